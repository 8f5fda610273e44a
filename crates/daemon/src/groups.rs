//! Group shares (SSL torrents) for the daemon and the command line: the TLS of a torrent from
//! this node's membership of its group, with the group's revocation list passed between
//! members, and the RPC's identity and group methods over the node's data folder.

use std::path::Path;
use std::sync::Arc;

use shoal_engine::{Revocations, SslTorrent};
use shoal_identity::{CertInfo, Groups, Identity, Revoked};
use shoal_proto::Metainfo;

/// How often a running group share reads this node's revocation list again.
pub const REVOCATIONS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// What a node needs to take part in a group share.
#[derive(Clone, Debug)]
pub struct Share {
    /// The TLS configurations and revocations for the engine.
    pub ssl: SslTorrent,
    /// The group's name on this node.
    pub group: String,
}

/// Why a group share cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// The torrent's `ssl-cert` is not a usable certificate.
    #[error("{torrent} is an SSL torrent, but {reason}")]
    BadCertificate {
        /// The torrent's name.
        torrent: String,
        /// What is wrong.
        reason: String,
    },
    /// This node holds no certificate from the torrent's authority.
    #[error(
        "{torrent} is shared with the members of {group} only (authority key sha256:{fingerprint}), and this node \
         ({id}) holds no certificate from it: ask the group's authority for an invitation (shoal group invite \
         GROUP {id}) and run shoal group join"
    )]
    NotMember {
        /// The torrent's name.
        torrent: String,
        /// `group "NAME"` from the authority's certificate, or `one group`.
        group: String,
        /// The authority key's fingerprint (first 16 hex digits).
        fingerprint: String,
        /// This node's identity ID.
        id: String,
    },
    /// The identity or group files could not be used.
    #[error(transparent)]
    Store(#[from] shoal_identity::Error),
}

impl ShareError {
    /// The message for a daemon whose identity lives in `data_dir`: how to make it a member.
    pub fn for_daemon(&self, data_dir: &Path) -> String {
        match self {
            Self::NotMember { .. } => format!(
                "{self} (this daemon's identity is in {dir}: use the RPC's group.join, or shoal group join \
                 INVITATION --data-dir {dir})",
                dir = data_dir.display()
            ),
            _ => self.to_string(),
        }
    }

    /// Whether the torrent or the user's setup is at fault (not the machine).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Store(shoal_identity::Error::Io { .. } | shoal_identity::Error::Crypto(_)))
    }
}

/// The group share `meta` is, from the identity and groups in `data_dir`; `None` for a torrent
/// without `ssl-cert`. Reads a few small files: call it off the async threads in servers.
pub fn share_for(data_dir: &Path, meta: &Metainfo) -> Result<Option<Share>, ShareError> {
    let Some(pem) = &meta.info.ssl_cert else { return Ok(None) };
    let torrent = meta.info.name.clone();
    let bad = |reason: String| ShareError::BadCertificate { torrent: torrent.clone(), reason };
    let ca = shoal_identity::cert_from_pem(pem.as_bytes(), "its ssl-cert").map_err(|e| bad(e.to_string()))?;
    let info = CertInfo::parse(&ca, "its ssl-cert").map_err(|e| bad(e.to_string()))?;
    let (identity, _) = Identity::load_or_create(data_dir, None)?;
    let groups = Groups::new(data_dir);
    let Some(member) = groups.membership_for(&identity, &ca)? else {
        let group = match info.common_name.as_deref().and_then(|cn| cn.strip_prefix("Shoal group ")) {
            Some(g) => format!("group {g:?}"),
            None => "one group".to_string(),
        };
        return Err(ShareError::NotMember {
            torrent,
            group,
            fingerprint: shoal_identity::hex(&info.fingerprint)[..16].to_string(),
            id: identity.id().to_string(),
        });
    };
    let revocations = group_revocations(data_dir, groups, &member, &info.fingerprint);
    let tls = shoal_identity::peer_tls(&member, &meta.info.name, revocations.revocations.revoked())?;
    let revocations: Arc<dyn Revocations> = Arc::new(PassedOn(revocations));
    Ok(Some(Share {
        ssl: SslTorrent { client: tls.client, server: tls.server, revocations: Some(revocations) },
        group: member.group,
    }))
}

/// A group's revocations in this process, shared by every torrent of the group: a list one of
/// them receives is in force for all, and the watch tells them all.
#[derive(Debug)]
struct Group {
    revocations: shoal_identity::GroupRevocations,
    /// The number of the list in force, sent whenever a newer one comes into force.
    in_force: tokio::sync::watch::Sender<u64>,
}

impl Group {
    /// Reads this node's list for the group again (the authority revoked someone here, maybe
    /// from another process) and tells the torrents when it is newer.
    fn refresh(&self) {
        if self.revocations.refresh() {
            self.in_force.send_replace(self.revocations.revoked().number());
        }
    }
}

type Registry = std::collections::HashMap<(std::path::PathBuf, [u8; 32]), Arc<Group>>;

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static REGISTRY: std::sync::OnceLock<std::sync::Mutex<Registry>> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner())
}

/// The group of `member` in this process, one per data folder and authority. The first use
/// starts one task that re-reads the node's list every [`REVOCATIONS_EVERY`] (one per group,
/// whatever the number of its torrents).
fn group_revocations(
    data_dir: &Path,
    groups: Groups,
    member: &shoal_identity::Membership,
    authority: &[u8; 32],
) -> Arc<Group> {
    registry()
        .entry((data_dir.to_path_buf(), *authority))
        .or_insert_with(|| {
            let revocations = shoal_identity::GroupRevocations::new(groups, member, Arc::new(Revoked::default()));
            let number = revocations.revoked().number();
            let group = Arc::new(Group { revocations, in_force: tokio::sync::watch::Sender::new(number) });
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let follow = group.clone();
                runtime.spawn(async move {
                    loop {
                        tokio::time::sleep(REVOCATIONS_EVERY).await;
                        let g = follow.clone();
                        let _ = tokio::task::spawn_blocking(move || g.refresh()).await;
                    }
                });
            }
            group
        })
        .clone()
}

/// Puts in force, for the running shares of every group of `data_dir`, the revocation lists
/// the node keeps (after `group.revoke`). Reads small files: call it off the async threads.
pub(crate) fn refresh_revocations(data_dir: &Path) {
    let groups: Vec<Arc<Group>> =
        registry().iter().filter(|((dir, _), _)| dir == data_dir).map(|(_, g)| g.clone()).collect();
    for group in groups {
        group.refresh();
    }
}

/// A group's revocation list as the engine passes it between members.
#[derive(Debug)]
struct PassedOn(Arc<Group>);

impl Revocations for PassedOn {
    fn current(&self) -> Option<Vec<u8>> {
        self.0.revocations.current()
    }
    fn offer(&self, list: &[u8]) -> bool {
        let taken = self.0.revocations.offer(list);
        if taken {
            tracing::info!("a member passed on a newer revocation list of the group; it is in force now");
            self.0.in_force.send_replace(self.0.revocations.revoked().number());
        }
        taken
    }
    fn is_revoked(&self, cert: &[u8]) -> bool {
        self.0.revocations.is_revoked(cert)
    }
    fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.in_force.subscribe()
    }
}

/// Runs `f` on the node's identity and groups on a blocking thread (key generation, small
/// file writes), mapping their errors to the RPC's.
async fn with_groups<T: Send + 'static>(
    data_dir: &Path,
    f: impl FnOnce(&Identity, &Groups) -> Result<T, shoal_identity::Error> + Send + 'static,
) -> Result<T, shoal_rpc::api::ApiError> {
    use shoal_identity::Error as E;
    use shoal_rpc::api::ApiError;
    let dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (identity, _) = Identity::load_or_create(&dir, None)?;
        f(&identity, &Groups::new(&dir))
    })
    .await
    .map_err(|_| ApiError::Failed("the group operation did not finish".into()))?
    .map_err(|e| match e {
        E::Invalid(_) | E::NoGroup(_) | E::NotAuthority(_) => ApiError::InvalidParams(e.to_string()),
        e => ApiError::Failed(e.to_string()),
    })
}

fn group_info(g: shoal_identity::GroupSummary) -> shoal_rpc::api::GroupInfo {
    shoal_rpc::api::GroupInfo {
        name: g.name,
        role: match g.role {
            shoal_identity::Role::Authority => "authority",
            shoal_identity::Role::Member => "member",
        }
        .into(),
        authority: g.authority,
        members: g
            .members
            .into_iter()
            .map(|m| shoal_rpc::api::GroupMember {
                member: m.member,
                kind: m.kind,
                name: m.name,
                issued: m.issued,
                revoked: m.revoked,
            })
            .collect(),
        revocation_list: g.revocation_list,
        revoked: g.revoked as u64,
        opens_sealed: g.opens_sealed,
    }
}

/// `identity.get`.
pub(crate) async fn identity_get(data_dir: &Path) -> Result<shoal_rpc::api::IdentityInfo, shoal_rpc::api::ApiError> {
    with_groups(data_dir, |me, _| Ok(shoal_rpc::api::IdentityInfo { id: me.id().to_string(), name: me.name().into() }))
        .await
}

/// `group.list`.
pub(crate) async fn group_list(data_dir: &Path) -> Result<Vec<shoal_rpc::api::GroupInfo>, shoal_rpc::api::ApiError> {
    with_groups(data_dir, |_, groups| Ok(groups.list()?.into_iter().map(group_info).collect())).await
}

/// `group.create`, `invite`, `join`, `issue`, `revoke`.
pub(crate) async fn group_change(
    data_dir: &Path,
    request: shoal_rpc::api::GroupRequest,
) -> Result<serde_json::Value, shoal_rpc::api::ApiError> {
    use shoal_rpc::api::{GroupRequest, InvitationInfo};
    fn json(v: &impl serde::Serialize) -> serde_json::Value {
        serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
    }
    with_groups(data_dir, move |me, groups| {
        Ok(match request {
            GroupRequest::Create { name } => json(&group_info(groups.create(me, &name)?)),
            GroupRequest::Invite { name, member, member_name, days, seed_only } => {
                let id: shoal_identity::IdentityId =
                    member.parse().map_err(|e| shoal_identity::Error::Invalid(format!("member {member:?}: {e}")))?;
                let days = days.unwrap_or(shoal_identity::INVITATION_DAYS);
                let inv = groups.invite(&name, id, member_name.as_deref(), days, seed_only)?;
                json(&InvitationInfo {
                    group: name,
                    member: id.to_string(),
                    invitation: inv.encode(),
                    expires: inv.expires,
                })
            }
            GroupRequest::Join { invitation } => {
                let inv = shoal_identity::Invitation::decode(&invitation)?;
                json(&group_info(groups.join(me, &inv)?))
            }
            GroupRequest::Issue { name, public_key, member_name } => {
                let certificate = groups.issue(&name, &public_key, member_name.as_deref())?;
                serde_json::json!({ "group": name, "certificate": certificate })
            }
            GroupRequest::Revoke { name, member } => {
                let (record, list) = groups.revoke(&name, &member)?;
                serde_json::json!({
                    "group": name,
                    "member": record.member,
                    "revocation_list": list.number,
                    "revoked": list.revoked.len(),
                })
            }
        })
    })
    .await
}
