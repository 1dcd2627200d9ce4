//! Measures ldir's CPU per HTTP check on this host, without IPVS: `ldir run`'s daemon loop
//! (`ldir::daemon::run`) against the recording IPVS fake, with the real prober checking real HTTP
//! servers on loopback, on one tokio thread with mimalloc, as `ldir run` does. Not a test: a tool
//! for profiling (`valgrind --tool=callgrind`, `perf record`, `strace -c -f`) what ldir spends per
//! check in the engine, the probe, the director and the loop around them.
//!
//! Usage: `check_load PORT VIRTUALS REALS INTERVAL_MS WARMUP_S SECONDS`. The reals are
//! `127.0.(1+k).(1+j):PORT` (k < VIRTUALS, j < REALS): start a server that answers HTTP on PORT on
//! every loopback address first, e.g. monitor's example `bench_http_server PORT` or nginx.
//!
//! After WARMUP_S seconds it measures SECONDS: checks run (counted by a wrapper around the
//! prober), how many were up, and the process's user and system CPU (getrusage) per check, and
//! prints them on one line; the count of checks run so far is printed first (`warm N`) so that
//! two runs of different lengths under callgrind give instructions per check by difference.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::daemon::RecordingNotifier;
use common::ipvs::{AsyncIpvs, RecordingIpvs};
use common::probe::{Outcome, Probe, Prober, Runner};
use ldir::daemon::{self, Deps, Event};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The real prober, counting its runs and their up results.
struct Counting {
    prober: Prober,
    runs: AtomicU64,
    up: AtomicU64,
}

impl Runner for Counting {
    async fn run(&self, probe: Arc<Probe>) -> Outcome {
        let o = Runner::run(&self.prober, probe).await;
        self.runs.fetch_add(1, Ordering::Relaxed);
        if o.up {
            self.up.fetch_add(1, Ordering::Relaxed);
        }
        o
    }
}

fn cpu() -> (f64, f64) {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let s = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    (s(u.user_time()), s(u.system_time()))
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let [port, virtuals, reals, interval_ms, warmup, seconds] = args[..] else {
        eprintln!("usage: check_load PORT VIRTUALS REALS INTERVAL_MS WARMUP_S SECONDS");
        std::process::exit(2);
    };
    assert!(virtuals <= 250 && reals <= 250, "at most 250 x 250");
    let dir = std::env::temp_dir().join(format!("ldir-check-load-{}", std::process::id()));
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(dir.join("sys")).unwrap();
    std::fs::write(
        conf.join("ldir.toml"),
        format!(
            "[global]\nstate_dir = \"{}\"\nreconcile_interval = \"1h\"\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    for k in 0..virtuals {
        let mut t = format!(
            "[virtual]\naddress = \"192.0.2.{}:80\"\nscheduler = \"wlc\"\nquiescent = true\n\n\
             [check]\ntype = \"http\"\npath = \"/\"\nexpect = \"200\"\ninterval = \"{interval_ms}ms\"\n\
             timeout = \"2s\"\nrise = 1\nfall = 3\nport = {port}\n",
            k + 1
        );
        for j in 0..reals {
            t += &format!(
                "\n[[real]]\naddress = \"127.0.{}.{}:80\"\nweight = 1\n",
                k + 1,
                j + 1
            );
        }
        std::fs::write(conf.join(format!("v{k:03}.toml")), t).unwrap();
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let watcher = ldir::watch::Watcher::start(&conf);
        let mut cache = ldir::config::Cache::default();
        let config = ldir::config::load_cached(&conf, &mut cache).expect("config");
        let runner = Arc::new(Counting {
            prober: Prober::new(),
            runs: 0.into(),
            up: 0.into(),
        });
        let (events, rx) = tokio::sync::mpsc::channel(16);
        let deps = Deps {
            ipvs: AsyncIpvs::new(RecordingIpvs::default()),
            runner: runner.clone(),
            notifier: Arc::new(RecordingNotifier::default()),
            sysctl_dir: dir.join("sys"),
            watcher,
        };
        let task = tokio::spawn(daemon::run(config, cache, deps, rx));
        tokio::time::sleep(Duration::from_secs(warmup)).await;
        let (n0, up0) = (runner.runs.load(Ordering::Relaxed), runner.up.load(Ordering::Relaxed));
        let (u0, s0) = cpu();
        println!("warm {n0}");
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (n1, up1) = (runner.runs.load(Ordering::Relaxed), runner.up.load(Ordering::Relaxed));
        let (u1, s1) = cpu();
        let n = (n1 - n0).max(1) as f64;
        println!(
            "checks {} ({:.0}/s) up {} user_us/check {:.1} sys_us/check {:.1} cpu_us/check {:.1} total {n1}",
            n1 - n0,
            n / seconds as f64,
            up1 - up0,
            (u1 - u0) / n * 1e6,
            (s1 - s0) / n * 1e6,
            (u1 - u0 + s1 - s0) / n * 1e6,
        );
        let _ = events
            .send(Event::Signal(common::daemon::SignalEvent::Shutdown))
            .await;
        let _ = task.await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}
