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
