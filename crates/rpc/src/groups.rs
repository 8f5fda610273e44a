//! The RPC's view of identities and groups (`identity.get`, `group.*`): what the methods
//! answer and the changes they ask for. Re-exported from [`crate::api`].

use serde::{Deserialize, Serialize};

/// This node's identity (`identity.get`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityInfo {
    /// The identity ID: the node's Ed25519 public key, checksummed, 8 groups of 7 characters.
    pub id: String,
    /// Its display name.
    pub name: String,
}

/// One certificate a group's authority issued (`group.list` on the authority's node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The member's identity ID, or `sha256:HEX` of a key made outside Shoal.
    pub member: String,
    /// Key type: `ed25519`, `ecdsa-p256` or `rsa`.
    pub kind: String,
    /// A name given when it was issued.
    #[serde(default)]
    pub name: Option<String>,
    /// Unix seconds.
    pub issued: i64,
    /// When it was revoked, Unix seconds.
    #[serde(default)]
    pub revoked: Option<i64>,
}

/// A group as this node sees it (`group.list`, `group.create`, `group.join`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// The group's name on this node.
    pub name: String,
    /// `authority` (this node holds the group's key) or `member`.
    pub role: String,
    /// SHA-256 of the authority's key, hex.
    pub authority: String,
    /// Certificates issued (the authority's node only).
    #[serde(default)]
    pub members: Vec<GroupMember>,
    /// Number of the newest revocation list held (0: none).
    pub revocation_list: u64,
    /// Keys that list revokes.
    pub revoked: u64,
    /// This node can open the group's sealed shares (false for a seed-only member).
    #[serde(default)]
    pub opens_sealed: bool,
}

/// An invitation (`group.invite`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationInfo {
    /// The group.
    pub group: String,
    /// The identity ID it is for.
    pub member: String,
    /// The one-line invitation the member passes to `group.join` (or `shoal group join`).
    pub invitation: String,
    /// Unix seconds after which it is refused.
    pub expires: i64,
}

/// A group request that changes something: create, invite, join, issue, revoke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRequest {
    /// `group.create`: make a group with this node as its authority.
    Create {
        /// Its name.
        name: String,
    },
    /// `group.invite`: an invitation for an identity.
    Invite {
        /// The group.
        name: String,
        /// The identity ID.
        member: String,
        /// A name for the member in `group.list`.
        member_name: Option<String>,
        /// Days it can be used (default 7).
        days: Option<u32>,
        /// Leave the group's key for sealed shares out: the member fetches and seeds the
        /// group's shares but cannot open sealed ones (a server peer).
        seed_only: bool,
    },
    /// `group.join`: store an invitation.
    Join {
        /// The invitation's text.
        invitation: String,
    },
    /// `group.issue`: a member certificate for a key made outside Shoal.
    Issue {
        /// The group.
        name: String,
        /// The member's public key (PEM).
        public_key: String,
        /// A name for the member in `group.list`.
        member_name: Option<String>,
    },
    /// `group.revoke`: revoke a member.
    Revoke {
        /// The group.
        name: String,
        /// Identity ID or `sha256:` fingerprint prefix.
        member: String,
    },
}

/// One push a server peer keeps (`server.pushes`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerPush {
    /// The pusher's identity ID.
    pub pusher: String,
    /// The torrent's id on this daemon.
    pub id: u64,
    /// Info-hash, lower-case hex.
    pub info_hash: String,
    /// The torrent's name.
    pub name: String,
    /// Total bytes (what the pusher's quota counts).
    pub size: u64,
    /// Bytes held verified.
    pub have: u64,
    /// Every byte is held verified.
    pub held: bool,
    /// When it was pushed, Unix seconds.
    pub pushed_at: u64,
}

/// One identity's use of a server peer (`server.pushes`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUse {
    /// The pusher's identity ID.
    pub pusher: String,
    /// Bytes its pushes take.
    pub used: u64,
    /// How many pushes it has here.
    pub pushes: u64,
}

/// The server peer role as it runs (`server.pushes`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerPushes {
    /// The push endpoint, `ID@ADDR`, as pushers name it.
    pub endpoint: String,
    /// Who may push (identity IDs and `group:NAME`).
    pub allow: Vec<String>,
    /// Bytes each identity may keep (`None`: no limit).
    pub quota: Option<u64>,
    /// Where pushed data lives.
    pub dir: String,
    /// Every push, oldest first.
    pub pushes: Vec<ServerPush>,
    /// Each pusher's use, by identity.
    pub usage: Vec<QuotaUse>,
}

/// What a `push.*` method asks this daemon to do at a server peer, as this daemon's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PushCall {
    /// `push.start`: push one of this daemon's torrents (it seeds it to the server).
    Start {
        /// The server, `ID@HOST:PORT`.
        to: String,
        /// The torrent: its id or info-hash on this daemon.
        torrent: crate::api::TorrentRef,
    },
    /// `push.status`: the server's progress with one push.
    Status {
        /// The server, `ID@HOST:PORT`.
        to: String,
        /// The torrent's info-hash (or its first 8+ digits).
        info_hash: String,
    },
    /// `push.list`: this daemon's pushes at the server.
    List {
        /// The server, `ID@HOST:PORT`.
        to: String,
    },
    /// `push.withdraw`: drop a push; the server deletes the data.
    Withdraw {
        /// The server, `ID@HOST:PORT`.
        to: String,
        /// The torrent's info-hash (or its first 8+ digits).
        info_hash: String,
    },
}
