//! The heartbeat message as the state machine sees it: what every frame carries once the codec
//! (`frame`) has checked its HMAC, cluster, size and freshness. Shared by the codec and the state
//! machine so that each can be written and tested on its own.

/// A node's state in the seed paper's design: Normal, Takeover, Recover, Down. A pair's state is
/// the two letters, e.g. `(D,T)` while the standby holds the failed primary's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeState {
    /// N: holds its own groups (those it is preferred for), nothing else.
    Normal,
    /// T: also holds groups whose preferred node is dead or handed them over.
    Takeover,
    /// R: back after a failure, its groups still held by a peer; waiting to get them back.
    Recover,
    /// D: dead (never sent by a node about itself; what a peer concludes).
    Down,
}

impl NodeState {
    /// The state's letter in `hbeat status` and logs.
    pub fn letter(self) -> char {
        match self {
            NodeState::Normal => 'N',
            NodeState::Takeover => 'T',
            NodeState::Recover => 'R',
            NodeState::Down => 'D',
        }
    }
}

/// What a message asks or tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// I'm alive (sent every keepalive on every link).
    Alive,
    /// I am stopping cleanly and hold nothing any more: take over at once.
    Leave,
    /// Take my groups (`hbeat standby`): the receiver answers `StandbyAck`, then the sender releases.
    StandbyRequest,
    /// I will take your groups once you have released them.
    StandbyAck,
    /// Give me the groups (`hbeat takeover`, or a returning preferred node with auto_failback).
    TakeoverRequest,
    /// Granted: I release them now; acquire once my `ResourceState` shows them released.
    TakeoverAck,
    /// The groups I hold changed (acquired or released).
    ResourceState,
}

/// One authenticated heartbeat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The cluster name; the codec drops other clusters' frames.
    pub cluster: String,
    /// The sending node's name.
    pub sender: String,
    /// Changes at every start of the sender (persisted under `/var/lib/hbeat/`).
    pub incarnation: u64,
    /// Grows by one with every frame the sender sends within one incarnation (over all links).
    pub seq: u64,
    pub kind: Kind,
    /// The sender's own state.
    pub state: NodeState,
    /// The groups the sender holds now, by name.
    pub held: Vec<String>,
    /// A hash of the sender's group definitions (names, order, nodes, resources): nodes whose
    /// hashes differ report it loudly.
    pub groups_hash: u64,
    /// The sender's id of the link the frame was sent on.
    pub link: u8,
    /// The node a request or ack is for (`None`: everyone, as for `Alive`, `Leave`,
    /// `ResourceState`). With three nodes a request must name who should answer it.
    pub to: Option<String>,
    /// The groups a request or ack is about (empty for `Alive`, `Leave`, `ResourceState`): with
    /// several groups and nodes, "take my groups" or "give me the groups" must say which.
    pub groups: Vec<String>,
    /// What the sender can serve now: the facts the failover policies compare between nodes.
    pub health: Health,
}

/// What a node says in every frame about its ability to serve: the peers' failover policies
/// (ping nodes, interface tracking, resource failures) decide on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Ping targets the sender reaches now, of `ping_total` configured (0 of 0: none configured).
    pub ping_reached: u8,
    pub ping_total: u8,
    /// Groups the sender could not serve now (in standby, a required interface without carrier,
    /// not eligible, its resources failed there): nobody hands them to it.
    pub unready: Vec<String>,
}
