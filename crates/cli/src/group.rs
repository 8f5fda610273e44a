//! `shoal identity` and `shoal group ...`: this node's identity, and groups as certificate
//! authorities (see the `shoal-identity` crate).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use shoal_identity::{Error as IdError, GroupSummary, Groups, Identity, IdentityId, Invitation, Role};

use crate::Failure;
use crate::args::{GroupArgs, GroupCommand, IdentityArgs};

/// Bad input (exit 2) or a failure of the store (exit 1).
fn failure(e: IdError) -> Failure {
    match e {
        IdError::Invalid(_) | IdError::NoGroup(_) | IdError::NotAuthority(_) => Failure::Input(anyhow!(e)),
        _ => Failure::Runtime(anyhow!(e)),
    }
}

/// The data folder: `--data-dir`, else `$XDG_DATA_HOME/shoal`.
pub(crate) fn data_folder(given: Option<&Path>) -> Result<PathBuf, Failure> {
    given
        .map(Path::to_path_buf)
        .or_else(crate::args::data_dir)
        .ok_or_else(|| Failure::Input(anyhow!("no data folder: set --data-dir, XDG_DATA_HOME or HOME")))
}

/// This node's identity, made on first use (a line on stderr says so).
pub(crate) fn load_identity(dir: &Path, name: Option<&str>, quiet: bool) -> Result<Identity, Failure> {
    let (identity, created) = Identity::load_or_create(dir, name).map_err(failure)?;
    if created && !quiet {
        eprintln!("made a new identity in {}", identity.dir().display());
    }
    Ok(identity)
}

/// `shoal identity`.
pub(crate) fn identity(a: IdentityArgs) -> Result<(), Failure> {
    let dir = data_folder(a.data_dir.as_deref())?;
    let (identity, created) = Identity::load_or_create(&dir, a.name.as_deref()).map_err(failure)?;
    if a.json {
        let v = serde_json::json!({
            "id": identity.id().to_string(),
            "name": identity.name(),
            "folder": identity.dir(),
            "created": created,
        });
        println!("{v}");
    } else {
        if created {
            eprintln!("made a new identity in {}", identity.dir().display());
        }
        println!("{}", identity.id());
    }
    Ok(())
}

/// `shoal group ...`.
pub(crate) fn run(a: GroupArgs, quiet: bool) -> Result<(), Failure> {
    let dir = data_folder(a.data_dir.as_deref())?;
    let groups = Groups::new(&dir);
    match a.command {
        GroupCommand::Create { name } => {
            let identity = load_identity(&dir, None, a.json || quiet)?;
            let summary = groups.create(&identity, &name).map_err(failure)?;
            if a.json {
                println!("{}", serde_json::to_string(&summary).map_err(|e| anyhow!(e))?);
            } else {
                println!("created group {name}: this node is its authority (key sha256:{})", &summary.authority[..16]);
                if !quiet {
                    println!("invite members with: shoal group invite {name} MEMBER_ID");
                }
            }
        }
        GroupCommand::Invite { name, member_id, output, member_name, days, seed_only } => {
            let member: IdentityId =
                member_id.parse().map_err(|e| Failure::Input(anyhow!("MEMBER_ID {member_id:?}: {e}")))?;
            if days == 0 {
                return Err(Failure::Input(anyhow!("--days must be at least 1")));
            }
            let invitation = groups.invite(&name, member, member_name.as_deref(), days, seed_only).map_err(failure)?;
            let text = invitation.encode();
            match output {
                Some(path) => {
                    std::fs::write(&path, format!("{text}\n"))
                        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
                    eprintln!("invitation to {name} for {member} written to {} (valid {days} days)", path.display());
                }
                None => println!("{text}"),
            }
        }
        GroupCommand::Join { invitation } => {
            let identity = load_identity(&dir, None, a.json || quiet)?;
            let text = read_invitation(&invitation)?;
            let invitation = Invitation::decode(&text).map_err(failure)?;
            let summary = groups.join(&identity, &invitation).map_err(failure)?;
            if a.json {
                println!("{}", serde_json::to_string(&summary).map_err(|e| anyhow!(e))?);
            } else {
                println!("joined group {} (authority sha256:{})", summary.name, &summary.authority[..16]);
            }
        }
        GroupCommand::Issue { name, public_key, output, member_name } => {
            let pem = std::fs::read(&public_key)
                .map_err(|e| Failure::Input(anyhow!("cannot read {}: {e}", public_key.display())))?;
            let pem = String::from_utf8(pem)
                .map_err(|_| Failure::Input(anyhow!("{} is not PEM text", public_key.display())))?;
            let cert = groups.issue(&name, &pem, member_name.as_deref()).map_err(failure)?;
            match output {
                Some(path) => {
                    std::fs::write(&path, &cert).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
                    eprintln!("member certificate of {name} written to {}", path.display());
                }
                None => print!("{cert}"),
            }
        }
        GroupCommand::List => {
            let list = groups.list().map_err(failure)?;
            if a.json {
                println!("{}", serde_json::to_string(&list).map_err(|e| anyhow!(e))?);
            } else if list.is_empty() {
                println!("no groups (make one with `shoal group create NAME` or join one with `shoal group join`)");
            } else {
                for g in &list {
                    print_group(g);
                }
            }
        }
        GroupCommand::Revoke { name, member } => {
            let (record, list) = groups.revoke(&name, &member).map_err(failure)?;
            if a.json {
                let v = serde_json::json!({"group": name, "member": record, "revocation_list": list.number, "revoked": list.revoked.len()});
                println!("{v}");
            } else {
                println!(
                    "revoked {} from {name}: revocation list #{} ({} key(s)); Shoal members pass it on when they meet",
                    record.member,
                    list.number,
                    list.revoked.len()
                );
            }
        }
    }
    Ok(())
}

fn print_group(g: &GroupSummary) {
    let role = match g.role {
        Role::Authority => "authority",
        Role::Member => "member",
    };
    let revoked = if g.revocation_list > 0 {
        format!(", revocation list #{} ({} revoked)", g.revocation_list, g.revoked)
    } else {
        String::new()
    };
    let seed_only = if g.opens_sealed { "" } else { ", seed-only (cannot open sealed shares)" };
    println!("{}  {role}  (authority key sha256:{}){revoked}{seed_only}", g.name, &g.authority[..16]);
    for m in &g.members {
        let state = match m.revoked {
            Some(at) => format!("revoked {}", shoal_identity::when(at)),
            None => format!("issued {}", shoal_identity::when(m.issued)),
        };
        let name = m.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        println!("  {}{name}  {}  {state}", m.member, m.kind);
    }
}

/// The invitation's text: the argument itself, a file's content, or stdin for `-`.
fn read_invitation(arg: &str) -> Result<String, Failure> {
    if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(2 << 20)
            .read_to_string(&mut text)
            .map_err(|e| Failure::Input(anyhow!("cannot read the invitation from stdin: {e}")))?;
        return Ok(text);
    }
    if arg.starts_with("shoal-invite:") {
        return Ok(arg.to_string());
    }
    let path = Path::new(arg);
    if path.is_file() {
        return std::fs::read_to_string(path)
            .map_err(|e| Failure::Input(anyhow!("cannot read the invitation in {}: {e}", path.display())));
    }
    Ok(arg.to_string())
}

/// The TLS of an SSL torrent (a group share) from this node's membership of its group;
/// `None` for other torrents. A torrent whose `ssl-cert` does not parse, or whose group this
/// node is not a member of, is bad input with a message saying what to do.
pub(crate) fn ssl_for(
    meta: &shoal_proto::Metainfo,
    data_dir: Option<&Path>,
    quiet: bool,
) -> Result<Option<(shoal_engine::SslTorrent, String)>, Failure> {
    if meta.info.ssl_cert.is_none() {
        return Ok(None);
    }
    let dir = data_folder(data_dir)?;
    // Made here first, so that a new identity is announced.
    load_identity(&dir, None, quiet)?;
    match shoal_daemon::groups::share_for(&dir, meta) {
        Ok(share) => Ok(share.map(|s| (s.ssl, s.group))),
        Err(e) if e.is_bad_input() => Err(Failure::Input(anyhow!(e))),
        Err(e) => Err(Failure::Runtime(anyhow!(e))),
    }
}
