//! `tests/lab run` itself: it boots the lab VM, streams the script's output, and carries the script's exit
//! status out; a VM that dies without reporting one is a failure (125) with its console shown, never a pass.

use std::process::Command;
use tests::workspace_root;

fn lab_run(script: &str) -> (Option<i32>, String, String) {
    let dir = std::env::temp_dir().join(format!("lab-runner-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("script.sh");
    std::fs::write(&path, script).unwrap();
    let out = Command::new(workspace_root().join("tests/lab"))
        .args(["run", path.to_str().unwrap()])
        // Only the runner is under test here: no need to build the workspace again.
        .env("LAB_NO_BUILD", "1")
        .env("LAB_TIMEOUT", "300")
        .output()
        .expect("run tests/lab (bash)");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lab_run_streams_output_and_carries_exit_status_and_detects_a_crashed_vm() {
    tests::require_root("it boots the lab VM with `tests/lab run`");
    tests::require_tool("qemu-system-x86_64", "qemu-system-x86");
    // A script's own status comes out, whatever it is, with its output and the VM's kernel.
    let (code, stdout, stderr) =
        lab_run("echo \"in the vm: $LAB $(uname -r) $(cat /proc/net/ip_vs | head -1)\"\nexit 7\n");
    assert_eq!(code, Some(7), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("in the vm: vm ") && stdout.contains("IP Virtual Server version"),
        "stdout: {stdout}\nstderr: {stderr}"
    );

    // A kernel crash ends the VM with no status: the runner must say so and fail with 125.
    let (code, stdout, stderr) = lab_run("echo crashing\necho c > /proc/sysrq-trigger\nsleep 60\n");
    assert_eq!(code, Some(125), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("the VM ended without the scenario's exit status"),
        "stderr: {stderr}"
    );
}
