//! Command-line syntax of `shoal` (clap derive). Parsing only; the subcommand modules do the
//! work.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Shoal: a peer-to-peer sharing node that speaks BitTorrent.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Log more (-v: info, -vv: debug, -vvv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Print only errors and the final result.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a local swarm on this machine: make data, seed it, download it through several peers.
    Demo(DemoArgs),
    /// Make a .torrent file from a file or folder.
    Create(CreateArgs),
    /// Make a torrent for each PATH, print its magnet link, and seed until Ctrl-C.
    Share(ShareArgs),
    /// Download a torrent; exits 0 once every piece is verified.
    Get(GetArgs),
    /// Play a file of a torrent while it downloads: serves it over HTTP and starts a player.
    Play(PlayArgs),
    /// Run the built-in tracker (HTTP and UDP).
    Tracker(TrackerArgs),
    /// Run a node in the background of your work, driven over RPC; state kept in SQLite.
    Daemon(DaemonArgs),
    /// Add a torrent (file, URL or magnet link) to the running daemon.
    Add(RemoteAddArgs),
    /// List the daemon's torrents.
    List(RemoteArgs),
    /// Show one torrent of the daemon.
    Status(RemoteIdArgs),
    /// Pause torrents of the daemon.
    Pause(RemoteIdArgs),
    /// Resume paused torrents of the daemon.
    Resume(RemoteIdArgs),
    /// Remove torrents from the daemon.
    Remove(RemoteRemoveArgs),
    /// Change torrents' limits, seeding goals, file choices, labels and piece order, or (with
    /// --global) the daemon's limits and goals.
    Set(RemoteSetArgs),
    /// Give torrents a new data folder, moving their files there.
    Move(RemoteMoveArgs),
    /// Show the free space in a folder of the daemon's machine.
    FreeSpace(RemoteFreeSpaceArgs),
    /// Check torrents' data on disk again (what is damaged or missing is downloaded again).
    Verify(RemoteIdArgs),
    /// Announce torrents to their trackers now.
    Reannounce(RemoteIdArgs),
    /// Terminal UI on the daemon: torrents, details, add, pause, resume, remove.
    #[command(mut_arg("json", |a| a.hide(true)))]
    Tui(RemoteArgs),
    /// Print this node's identity ID (a key pair made on first use).
    Identity(IdentityArgs),
    /// Groups: certificate authorities whose members alone can open a group's private torrents.
    Group(GroupArgs),
    /// Keep a share on a server peer that allows you: it fetches the data from this process
    /// (and any other peer) and keeps seeding it while you are offline.
    Push(PushArgs),
    /// Run an index server: publishers send records signed by their identity, anyone searches.
    Index(IndexArgs),
    /// Publish a torrent to an index server, signed by this node's identity.
    Publish(PublishArgs),
    /// Search an index server by name; `shoal get @N` fetches result N.
    Search(SearchArgs),
    /// Live broadcasts relayed by their audience: broadcast a stream, or watch a channel.
    Live(LiveArgs),
}

/// `shoal live`.
#[derive(Debug, Args)]
pub(crate) struct LiveArgs {
    #[command(subcommand)]
    pub(crate) command: LiveCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LiveCommand {
    /// Broadcast a stream (e.g. MPEG-TS from ffmpeg): prints the channel link viewers join with.
    Broadcast(LiveBroadcastArgs),
    /// Watch a channel: plays it, writes it to a file or stdout, or serves it over HTTP, and
    /// relays it to other viewers.
    Watch(LiveWatchArgs),
}

/// `shoal live broadcast`.
#[derive(Debug, Args)]
pub(crate) struct LiveBroadcastArgs {
    /// The stream: a file, `-` for stdin, or an http(s):// URL.
    #[arg(long, value_name = "FILE|-|URL")]
    pub(crate) input: String,
    /// The channel's name, shown to viewers (in the link).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Start reading the input only once this many viewers are connected (for a recorded file
    /// that everyone should get from its first byte).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) wait_for_viewers: usize,
    /// A tracker where the channel's viewers meet (repeatable; named in the link).
    #[arg(long = "tracker", value_name = "URL")]
    pub(crate) trackers: Vec<String>,
    /// A group channel: only members of group NAME can watch or relay it (TLS with member
    /// certificates, as for group shares); the link says which group.
    #[arg(long, value_name = "NAME")]
    pub(crate) group: Option<String>,
    /// Connect to this node of the channel directly (repeatable).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub(crate) peers: Vec<String>,
    /// Folder of the identity that signs the broadcast (default: $XDG_DATA_HOME/shoal).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) node: NodeOptions,
}

/// `shoal live watch`.
#[derive(Debug, Args)]
pub(crate) struct LiveWatchArgs {
    /// The channel link (`magnet:?xs=urn:btpk:...`).
    pub(crate) link: String,
    /// Write the stream to FILE (`-`: stdout) instead of playing it.
    #[arg(short, long, value_name = "FILE|-")]
    pub(crate) output: Option<String>,
    /// Serve the stream over HTTP on this address (prints `stream: URL`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) http: Option<SocketAddr>,
    /// Player command, given the stream's URL as its last argument (default, without -o or
    /// --http: the first of mpv, vlc, ffplay found on PATH).
    #[arg(long, value_name = "CMD")]
    pub(crate) player: Option<String>,
    /// How far behind the source to play, in ms: more is smoother, less is closer to live.
    #[arg(long, value_name = "MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(500..=60_000))]
    pub(crate) lag: u64,
    /// Connect to this node of the channel directly (repeatable).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub(crate) peers: Vec<String>,
    /// Folder of this node's state (default: $XDG_DATA_HOME/shoal).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) node: NodeOptions,
}

/// `shoal index`.
#[derive(Debug, Args)]
pub(crate) struct IndexArgs {
    /// Address to serve HTTP on (`POST /publish`, `GET /search?q=`).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7070")]
    pub(crate) listen: SocketAddr,
    /// Folder of the index's database (default: $XDG_DATA_HOME/shoal).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Most records kept; past it the least recently published go.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub(crate) max_records: usize,
    /// Most records kept per publisher.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub(crate) per_identity: usize,
    /// Most publishes per publisher per minute.
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub(crate) per_minute: u32,
}

/// `shoal publish`.
#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The .torrent file to publish.
    pub(crate) source: PathBuf,
    /// The index server, http://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub(crate) index: String,
    /// Words to find it by besides its name and files (comma-separated).
    #[arg(long, value_name = "TAG,...", value_delimiter = ',')]
    pub(crate) tags: Vec<String>,
    /// Folder of the identity (default: $XDG_DATA_HOME/shoal).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

/// `shoal search`.
#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    /// Words to look for (all must match, each as the start of a word).
    #[arg(required = true)]
    pub(crate) words: Vec<String>,
    /// Ask this index server directly (http://HOST:PORT) instead of the daemon.
    #[arg(long, value_name = "URL")]
    pub(crate) index: Option<String>,
    /// Most results.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) limit: usize,
    /// Do not ask the daemon's search neighbours (its index and index servers only).
    #[arg(long)]
    pub(crate) no_peers: bool,
    /// Also see records of group NAME's shares, proving membership with this node's
    /// certificate (repeatable).
    #[arg(long = "member", value_name = "NAME")]
    pub(crate) member: Vec<String>,
    /// Folder of the identity and the last results (default: $XDG_DATA_HOME/shoal).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The daemon to ask when no --index is given (and --json).
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

/// `shoal push`.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// A file or folder (made into a torrent as `share` does, the .torrent written beside it),
    /// or a .torrent file whose data is in -o.
    #[arg(required_unless_present_any = ["list", "withdraw"], conflicts_with_all = ["list", "withdraw"])]
    pub(crate) source: Option<PathBuf>,
    /// The server: its identity ID, @, and its push endpoint.
    #[arg(long, value_name = "ID@HOST:PORT", value_parser = parse_target)]
    pub(crate) to: shoal_daemon::push::Target,
    /// With a .torrent SOURCE: the folder holding its data (default: the current folder). With
    /// a file or folder: where to write the .torrent (default: beside it).
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    /// List what you have pushed to the server, with sizes and state.
    #[arg(long, conflicts_with = "withdraw")]
    pub(crate) list: bool,
    /// Remove one of your pushes from the server (its info-hash, or its first 8+ digits); the
    /// server deletes the data.
    #[arg(long, value_name = "INFO_HASH")]
    pub(crate) withdraw: Option<String>,
    /// Give up (exit 1) if the server does not hold a verified copy after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) timeout: Option<u64>,
    /// Share with the members of this group only (the server must be a member too).
    #[arg(long, value_name = "NAME")]
    pub(crate) group: Option<String>,
    /// With --group: push ciphertext that only members holding the group's key can open; the
    /// server stores and serves it without being able to read it.
    #[arg(long, requires = "group")]
    pub(crate) sealed: bool,
    /// Show the server this node's membership of group NAME (for a server that allows
    /// group:NAME; a group share shows its own group's). Repeatable.
    #[arg(long = "member", value_name = "NAME")]
    pub(crate) member: Vec<String>,
    /// Tracker announce URL for a new torrent (repeatable).
    #[arg(long = "tracker", value_name = "URL")]
    pub(crate) trackers: Vec<String>,
    /// Piece size of a new torrent (default: chosen from the size).
    #[arg(long, value_name = "SIZE", value_parser = parse_piece_size)]
    pub(crate) piece_size: Option<u32>,
    /// Folder of the identity and groups (default: $XDG_DATA_HOME/shoal).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Print the server's answers as JSON (--list, --withdraw).
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) node: NodeOptions,
}

fn parse_target(s: &str) -> Result<shoal_daemon::push::Target, String> {
    s.parse()
}

/// `shoal identity`.
#[derive(Debug, Args)]
pub(crate) struct IdentityArgs {
    /// Set the display name shown to groups.
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// Print JSON (id, name, folder, created).
    #[arg(long)]
    pub(crate) json: bool,
    /// Folder of the identity and groups (default: $XDG_DATA_HOME/shoal).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

/// `shoal group ...`.
#[derive(Debug, Args)]
pub(crate) struct GroupArgs {
    #[command(subcommand)]
    pub(crate) command: GroupCommand,
    /// Folder of the identity and groups (default: $XDG_DATA_HOME/shoal).
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// The group subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// Make a group with this node as its authority (its key never leaves this node).
    Create {
        /// The group's name (letters, digits, '.', '_', '-').
        name: String,
    },
    /// Print an invitation (one line) carrying a member certificate for MEMBER_ID.
    Invite {
        /// The group.
        name: String,
        /// The new member's identity ID (`shoal identity` on their node).
        member_id: String,
        /// Write the invitation to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// A name for the member in `group list`.
        #[arg(long = "name", value_name = "NAME")]
        member_name: Option<String>,
        /// Days the invitation can be used.
        #[arg(long, value_name = "DAYS", default_value_t = shoal_identity::INVITATION_DAYS)]
        days: u32,
        /// Leave the group's key for sealed shares out: the member fetches and seeds the group's
        /// shares but cannot open sealed ones (for a server peer).
        #[arg(long)]
        seed_only: bool,
    },
    /// Join a group: INVITATION is the invitation's text, a file holding it, or - for stdin.
    Join {
        /// The invitation.
        invitation: String,
    },
    /// Sign a member certificate for a key made outside Shoal (Ed25519, ECDSA P-256 or RSA).
    Issue {
        /// The group.
        name: String,
        /// The member's public key (PEM; a private key is accepted and only its public half used).
        #[arg(long, value_name = "KEY.pem")]
        public_key: PathBuf,
        /// Where to write the certificate (default: stdout).
        #[arg(short, long, value_name = "CERT.pem")]
        output: Option<PathBuf>,
        /// A name for the member in `group list`.
        #[arg(long = "name", value_name = "NAME")]
        member_name: Option<String>,
    },
    /// List groups, this node's role in each, and (for authorities) their members.
    List,
    /// Revoke a member: Shoal members refuse its certificate from then on.
    Revoke {
        /// The group.
        name: String,
        /// The member's identity ID, or `sha256:` and the first digits of an outside key's fingerprint.
        member: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct DaemonArgs {
    /// Folder for the state database and, by default, downloads (default: $XDG_DATA_HOME/shoal).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Address of the RPC server (default 127.0.0.1:9091; any other address needs credentials).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) rpc_listen: Option<SocketAddr>,
    /// Where new torrents are downloaded unless the request names a folder.
    #[arg(long, value_name = "DIR")]
    pub(crate) download_dir: Option<PathBuf>,
    /// TOML file of defaults (flags override it).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Keep shares others push (`shoal push`): the push endpoint's address ([server] listen).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) server_listen: Option<SocketAddr>,
    /// Who may push: an identity ID or group:NAME (repeatable; added to [server] allow).
    #[arg(long = "allow", value_name = "ID|group:NAME")]
    pub(crate) allow: Vec<String>,
    /// Bytes each identity may keep on this server, e.g. 50G ([server] quota).
    #[arg(long, value_name = "SIZE", value_parser = parse_quota)]
    pub(crate) quota: Option<u64>,
    /// Where pushed data lives ([server] dir; default: DATA_DIR/pushed).
    #[arg(long, value_name = "DIR")]
    pub(crate) server_dir: Option<PathBuf>,
    /// An index server search.query asks (repeatable; added to [search] index).
    #[arg(long = "search-index", value_name = "URL")]
    pub(crate) search_index: Vec<String>,
    /// A search neighbour to keep: another Shoal node's peer port (repeatable; added to
    /// [search] peers).
    #[arg(long = "search-peer", value_name = "HOST:PORT")]
    pub(crate) search_peer: Vec<SocketAddr>,
    /// Take no part in search without a server: no neighbours, nobody's queries answered
    /// ([search] overlay = false).
    #[arg(long)]
    pub(crate) no_search_overlay: bool,
    /// Fill the search index from the DHT: sample other nodes' info-hashes (BEP 51) and fetch
    /// their metadata ([search] dht_crawl).
    #[arg(long)]
    pub(crate) dht_crawl: bool,
    /// A publisher (identity ID) whose search results rank first (repeatable; added to
    /// [search] trust).
    #[arg(long = "trust", value_name = "ID")]
    pub(crate) trust: Vec<String>,
    #[command(flatten)]
    pub(crate) node: NodeOptions,
}

fn parse_quota(s: &str) -> Result<u64, String> {
    shoal_state::size::parse_size(s)
}

/// How to reach the daemon. What is not given here comes from `SHOAL_RPC`, `SHOAL_TOKEN`,
/// `SHOAL_USER` and `SHOAL_PASSWORD`, then from the client config file
/// ([`crate::remote::Remote::resolve`]).
#[derive(Debug, Args, Clone)]
pub(crate) struct RemoteArgs {
    /// The daemon: HOST:PORT, http://HOST:PORT/ or its /jsonrpc URL (default: $SHOAL_RPC, then
    /// `rpc` in ~/.config/shoal/client.toml, then 127.0.0.1:9091).
    #[arg(long, value_name = "URL", value_parser = crate::remote::RpcUrl::parse)]
    pub(crate) rpc: Option<crate::remote::RpcUrl>,
    /// Token, if the daemon requires one (default: $SHOAL_TOKEN, then `token` in client.toml).
    #[arg(long, value_name = "TOKEN")]
    pub(crate) token: Option<String>,
    /// User for HTTP Basic authentication (default: $SHOAL_USER, then `user` in client.toml).
    #[arg(long, value_name = "USER")]
    pub(crate) user: Option<String>,
    /// Password of --user; other users can read it in the process list, so $SHOAL_PASSWORD or
    /// `password` in client.toml is safer.
    #[arg(long, value_name = "PASSWORD")]
    pub(crate) password: Option<String>,
    /// Print the daemon's answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RemoteAddArgs {
    /// A .torrent file, an http(s) URL of one, or a magnet link.
    pub(crate) source: String,
    /// Folder to download into (default: the daemon's).
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    /// Add it paused.
    #[arg(long)]
    pub(crate) paused: bool,
    /// A peer to dial (IP:PORT), besides those found; kept with the torrent. Repeatable.
    #[arg(long = "peer", value_name = "IP:PORT")]
    pub(crate) peers: Vec<SocketAddr>,
    /// Labels for the torrent, comma-separated.
    #[arg(long, value_name = "LABELS", value_delimiter = ',')]
    pub(crate) labels: Vec<String>,
    /// Download the pieces in order, first to last, instead of rarest first.
    #[arg(long)]
    pub(crate) sequential: bool,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RemoteMoveArgs {
    /// Torrent ids or info-hashes (`all` for every torrent).
    #[arg(required = true)]
    pub(crate) ids: Vec<String>,
    /// The new folder, on the daemon's machine.
    #[arg(long, value_name = "DIR")]
    pub(crate) to: PathBuf,
    /// Do not move the files: look for them in DIR (their data is checked there).
    #[arg(long)]
    pub(crate) no_move: bool,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RemoteFreeSpaceArgs {
    /// A folder on the daemon's machine (default: its download folder).
    pub(crate) path: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RemoteIdArgs {
    /// Torrent ids or info-hashes (`all` for every torrent).
    #[arg(required = true)]
    pub(crate) ids: Vec<String>,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RemoteSetArgs {
    /// Torrent ids or info-hashes (`all` for every torrent); none with --global.
    #[arg(required_unless_present = "global", conflicts_with = "global")]
    pub(crate) ids: Vec<String>,
    /// Change the daemon's own limits instead of torrents'.
    #[arg(long)]
    pub(crate) global: bool,
    /// Upload cap (suffixes k, M, G), or `none`.
    #[arg(long, value_name = "RATE|none", value_parser = parse_limit)]
    pub(crate) upload_limit: Option<Limit>,
    /// Download cap (suffixes k, M, G), or `none`.
    #[arg(long, value_name = "RATE|none", value_parser = parse_limit)]
    pub(crate) download_limit: Option<Limit>,
    /// Most connections: per torrent (`default`: the daemon's), or with --global over all.
    #[arg(long, value_name = "N|default", value_parser = parse_count)]
    pub(crate) max_peers: Option<Limit>,
    /// With --global: the most connections per torrent.
    #[arg(long, value_name = "N", requires = "global")]
    pub(crate) max_peers_per_torrent: Option<u32>,
    /// Stop seeding at this upload ratio; `default`: the daemon's goal; `unlimited`: seed
    /// whatever the ratio. With --global, `none` (or `unlimited`) removes the daemon's goal.
    #[arg(long, value_name = "RATIO|default|unlimited", value_parser = parse_ratio_goal)]
    pub(crate) seed_ratio: Option<GoalArg<f64>>,
    /// Stop seeding after this many seconds of seeding; words as for --seed-ratio.
    #[arg(long, value_name = "SECS|default|unlimited", value_parser = parse_secs_goal)]
    pub(crate) seed_time: Option<GoalArg<u64>>,
    /// Stop seeding after this many seconds without uploading; words as for --seed-ratio.
    #[arg(long, value_name = "SECS|default|unlimited", value_parser = parse_secs_goal)]
    pub(crate) seed_idle: Option<GoalArg<u64>>,
    /// Replace the torrents' labels (comma-separated; "" removes them all).
    #[arg(long, value_name = "LABELS", conflicts_with = "global")]
    pub(crate) labels: Option<String>,
    /// Download pieces in order (`on`) or rarest first (`off`).
    #[arg(long, value_name = "on|off", value_parser = parse_switch, conflicts_with = "global")]
    pub(crate) sequential: Option<bool>,
    /// Files not to download (indices as `status` lists them, comma-separated).
    #[arg(long, value_name = "FILES", value_delimiter = ',', conflicts_with = "global")]
    pub(crate) skip: Vec<usize>,
    /// Files to download normally.
    #[arg(long, value_name = "FILES", value_delimiter = ',', conflicts_with = "global")]
    pub(crate) normal: Vec<usize>,
    /// Files to download first.
    #[arg(long, value_name = "FILES", value_delimiter = ',', conflicts_with = "global")]
    pub(crate) high: Vec<usize>,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

/// A number, or none (`none` for a limit, `default` for a per-torrent count). An alias, so
/// clap takes `Option<Limit>` as an optional argument whose value may say "none".
pub(crate) type Limit = Option<u64>;

/// A seeding goal on the command line: a value, the daemon's (`default`, or `none`), or
/// none at all (`unlimited`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum GoalArg<T> {
    /// The daemon's goal (per torrent); no goal (with --global).
    Default,
    /// Seed whatever the goal.
    Unlimited,
    /// This goal.
    Value(T),
}

impl<T: serde::Serialize> GoalArg<T> {
    /// The JSON-RPC value: per torrent `null`, `"unlimited"` or the number; for the daemon's
    /// own goal (`global`), `null` for no goal.
    pub(crate) fn json(&self, global: bool) -> serde_json::Value {
        match self {
            GoalArg::Default => serde_json::Value::Null,
            GoalArg::Unlimited if global => serde_json::Value::Null,
            GoalArg::Unlimited => serde_json::Value::from("unlimited"),
            GoalArg::Value(v) => serde_json::json!(v),
        }
    }
}

fn goal_word<T>(s: &str) -> Option<GoalArg<T>> {
    match s.to_ascii_lowercase().as_str() {
        "default" | "none" => Some(GoalArg::Default),
        "unlimited" | "never" => Some(GoalArg::Unlimited),
        _ => None,
    }
}

fn parse_ratio_goal(s: &str) -> Result<GoalArg<f64>, String> {
    if let Some(word) = goal_word(s) {
        return Ok(word);
    }
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(GoalArg::Value(r)),
        _ => Err(format!("{s:?} is not a ratio like 1.5 (or default, unlimited)")),
    }
}

fn parse_secs_goal(s: &str) -> Result<GoalArg<u64>, String> {
    if let Some(word) = goal_word(s) {
        return Ok(word);
    }
    s.parse::<u64>()
        .map(GoalArg::Value)
        .map_err(|_| format!("{s:?} is not a whole number of seconds (or default, unlimited)"))
}

fn parse_switch(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("{s:?}: expected on or off")),
    }
}

fn parse_limit(s: &str) -> Result<Limit, String> {
    if s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    parse_rate(s).map(Some)
}

fn parse_count(s: &str) -> Result<Limit, String> {
    if ["none", "default", "unlimited"].iter().any(|w| s.eq_ignore_ascii_case(w)) {
        return Ok(None);
    }
    s.parse::<u64>().map(Some).map_err(|_| format!("{s:?} is not a whole number (or none)"))
}

#[derive(Debug, Args)]
pub(crate) struct RemoteRemoveArgs {
    /// Torrent ids or info-hashes (`all` for every torrent).
    #[arg(required = true)]
    pub(crate) ids: Vec<String>,
    /// Delete the downloaded files too.
    #[arg(long)]
    pub(crate) delete_data: bool,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// File or folder to describe.
    pub(crate) path: PathBuf,
    /// Where to write the .torrent file.
    #[arg(short, long)]
    pub(crate) output: PathBuf,
    #[command(flatten)]
    pub(crate) torrent: TorrentOptions,
}

/// Options shared by `create` and `share`.
#[derive(Debug, Args, Clone)]
pub(crate) struct TorrentOptions {
    /// Tracker announce URL (repeat for more; each becomes its own tier).
    #[arg(long = "tracker", value_name = "URL")]
    pub(crate) trackers: Vec<String>,
    /// Piece size: a power of two from 16k to 64M, e.g. 256k (default: chosen from the size).
    #[arg(long, value_name = "SIZE", value_parser = parse_piece_size)]
    pub(crate) piece_size: Option<u32>,
    /// Mark the torrent private (BEP 27): peers come only from its trackers.
    #[arg(long)]
    pub(crate) private: bool,
    /// A comment stored in the torrent.
    #[arg(long, value_name = "TEXT")]
    pub(crate) comment: Option<String>,
    /// Make a BitTorrent v2 torrent (BEP 52: per-file SHA-256 Merkle trees), which v1-only
    /// clients cannot read.
    #[arg(long, conflicts_with = "hybrid")]
    pub(crate) v2: bool,
    /// Make a hybrid torrent: v2 and v1 in one (files padded to piece boundaries, BEP 47), read
    /// by every client.
    #[arg(long)]
    pub(crate) hybrid: bool,
    /// A web seed (BEP 19): an http(s) URL serving the content (repeatable). A URL ending in
    /// `/` is a folder holding the torrent's name; otherwise, for a single file, the file itself.
    #[arg(long = "web-seed", value_name = "URL")]
    pub(crate) web_seeds: Vec<String>,
    /// Share with the members of this group only: an SSL torrent carrying the group's
    /// authority certificate (libtorrent-compatible).
    #[arg(long, value_name = "NAME")]
    pub(crate) group: Option<String>,
    /// Share with these people only (identity IDs, comma-separated): an SSL torrent with an
    /// authority of its own; prints an invitation for each.
    #[arg(long, value_name = "ID,...", value_delimiter = ',', conflicts_with = "group")]
    pub(crate) to: Vec<String>,
    /// Folder of the identity and groups (default: $XDG_DATA_HOME/shoal).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

/// Where a node accepts peers unless told otherwise.
pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:6881";

/// Options of a node that joins swarms.
#[derive(Debug, Args, Clone)]
pub(crate) struct NodeOptions {
    /// Address to accept peers on (port 0 = any free port).
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN)]
    pub(crate) listen: SocketAddr,
    /// Upload cap in bytes per second (suffixes k, M, G allowed; default unlimited).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub(crate) upload_limit: Option<u64>,
    /// Download cap in bytes per second (suffixes k, M, G allowed; default unlimited).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub(crate) download_limit: Option<u64>,
    /// Do not run a DHT node (peers then come from trackers, peer exchange and --peer).
    #[arg(long)]
    pub(crate) no_dht: bool,
    /// UDP port of the DHT node (if the default is taken, any free port is used).
    #[arg(long, value_name = "PORT", default_value_t = 6881)]
    pub(crate) dht_port: u16,
    /// Do not look for peers on the local network (BEP 14 multicast).
    #[arg(long)]
    pub(crate) no_lsd: bool,
    /// Bootstrap the DHT from this node instead of the public routers (repeatable).
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub(crate) dht_bootstrap: Vec<String>,
    /// Most peers connected to one torrent [default: 80].
    #[arg(long, value_name = "N", value_parser = parse_connections)]
    pub(crate) max_peers: Option<usize>,
    /// Most peer connections over all torrents; incoming ones beyond it are closed at once
    /// [default: 500].
    #[arg(long, value_name = "N", value_parser = parse_connections)]
    pub(crate) max_connections: Option<usize>,
    /// Address to accept the TLS connections of SSL torrents (group shares) on [default: the
    /// --listen address with any free port, opened when an SSL torrent is loaded].
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) ssl_listen: Option<SocketAddr>,
    /// Protocol encryption (MSE/PE): prefer (encrypted handshake when the peer takes it, plain
    /// otherwise), require (RC4-encrypted connections only) or off (plain only) [default:
    /// prefer].
    #[arg(long, value_name = "POLICY")]
    pub(crate) encryption: Option<shoal_engine::mse::Encryption>,
    /// uTP (BEP 29, on the --listen port's UDP twin): on (accepted; peers dialled over TCP
    /// first, over uTP when TCP does not reach them), prefer (uTP dialled first, as libtorrent
    /// does) or off (TCP only) [default: on].
    #[arg(long, value_name = "MODE")]
    pub(crate) utp: Option<shoal_engine::UtpMode>,
}

impl NodeOptions {
    /// The engine settings these options describe, with an SSL listener when `ssl` (an SSL
    /// torrent is loaded) or `--ssl-listen` asks for one, and the DHT's routing table (and so
    /// its node id) kept in `data_dir` when one is given (`--data-dir`), else in the default
    /// data folder: two nodes with folders of their own are two DHT nodes.
    pub(crate) fn session_config_for(
        &self,
        ssl: bool,
        data_dir: Option<&std::path::Path>,
    ) -> shoal_engine::SessionConfig {
        let mut config = self.session_config();
        if let (Some(dht), Some(dir)) = (&mut config.dht, data_dir) {
            dht.state_file = Some(dir.join(dht_state_name(dht.listen.ip())));
        }
        if ssl && config.ssl_listen.is_none() {
            config.ssl_listen = Some(SocketAddr::new(self.listen.ip(), 0));
        }
        config
    }

    /// The engine settings these options describe.
    pub(crate) fn session_config(&self) -> shoal_engine::SessionConfig {
        let defaults = shoal_engine::SessionConfig::default();
        shoal_engine::SessionConfig {
            listen: self.listen,
            upload_limit: self.upload_limit,
            download_limit: self.download_limit,
            dht: (!self.no_dht).then(|| self.dht_config()),
            lsd: !self.no_lsd,
            max_peers: self.max_peers.unwrap_or(defaults.max_peers),
            max_connections: self.max_connections.unwrap_or(defaults.max_connections),
            ssl_listen: self.ssl_listen,
            encryption: self.encryption.unwrap_or_default(),
            utp: self.utp.unwrap_or_default(),
            ..defaults
        }
    }

    /// The DHT node's settings: on the IPv4 address peers are accepted on (any address when
    /// that is IPv6), the routing table kept in the data folder.
    fn dht_config(&self) -> shoal_engine::DhtConfig {
        // The DHT node takes the family of --listen: an IPv6 address runs an IPv6 node (BEP 32).
        // `[::]` keeps the IPv4 node on 0.0.0.0 (a dual-stack socket would mix the families).
        let ip = match self.listen.ip() {
            std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED),
            ip => ip,
        };
        let mut config = shoal_engine::DhtConfig {
            listen: SocketAddr::new(ip, self.dht_port),
            state_file: data_dir().map(|d| d.join(dht_state_name(ip))),
            ..Default::default()
        };
        if !self.dht_bootstrap.is_empty() {
            config.bootstrap = self.dht_bootstrap.clone();
        }
        config
    }
}

/// The DHT's state file for a node of `ip`'s family (one table per family, BEP 32).
fn dht_state_name(ip: std::net::IpAddr) -> &'static str {
    if ip.is_ipv6() { "dht6.state" } else { "dht.state" }
}

/// Shoal's data folder: `$XDG_DATA_HOME/shoal`, or `~/.local/share/shoal`.
pub(crate) fn data_dir() -> Option<std::path::PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".local/share"),
    };
    Some(base.join("shoal"))
}

/// Checks `host:port` (the host is resolved later).
fn parse_host_port(s: &str) -> Result<String, String> {
    let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("{s:?} is not HOST:PORT"));
    }
    Ok(s.to_owned())
}

/// Parses a number of connections: 1 to 65,535.
fn parse_connections(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ 1..=65_535) => Ok(n),
        _ => Err(format!("{s:?} is not a number of connections from 1 to 65535")),
    }
}

/// Parses a rate in bytes per second: `1500`, `64k`, `5M`, `1.5G` (powers of 1024).
fn parse_rate(s: &str) -> Result<u64, String> {
    match shoal_state::size::parse_size(s)? {
        0 => Err(format!("{s:?} is not a positive rate")),
        n => Ok(n),
    }
}

/// Parses a piece size: `262144` or `256k` (checked to be a power of two later).
fn parse_piece_size(s: &str) -> Result<u32, String> {
    let n = shoal_state::size::parse_size(s)?;
    u32::try_from(n).map_err(|_| format!("{s:?} is larger than any piece size (64 MiB at most)"))
}

#[derive(Debug, Args)]
pub(crate) struct ShareArgs {
    /// Files or folders to share.
    #[arg(required = true)]
    pub(crate) paths: Vec<PathBuf>,
    /// Where to write the .torrent file (only with a single PATH; default: next to the data).
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    /// Also connect to these peers (a seed dialing leechers that cannot dial it).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub(crate) peers: Vec<String>,
    /// With --group: share ciphertext that only members holding the group's key can open
    /// (peers that only store and serve it, such as a server peer, cannot read it).
    #[arg(long, requires = "group")]
    pub(crate) sealed: bool,
    #[command(flatten)]
    pub(crate) torrent: TorrentOptions,
    #[command(flatten)]
    pub(crate) node: NodeOptions,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// A .torrent file, an http(s) URL of one, a magnet link, or @N for result N of the last
    /// `shoal search`.
    pub(crate) source: String,
    /// Folder to download into (default: the current folder).
    #[arg(short, long, default_value = ".")]
    pub(crate) output: PathBuf,
    /// Connect to this peer directly (repeatable).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub(crate) peers: Vec<String>,
    /// Keep seeding after the download completes, until Ctrl-C.
    #[arg(long)]
    pub(crate) seed: bool,
    /// Do not announce to the torrent's trackers.
    #[arg(long)]
    pub(crate) no_trackers: bool,
    /// Give up (exit 1) if the download is not complete after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) timeout: Option<u64>,
    /// Folder of the identity and groups, for group shares (default: $XDG_DATA_HOME/shoal).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) node: NodeOptions,
}

#[derive(Debug, Args)]
pub(crate) struct PlayArgs {
    /// A .torrent file, an http(s) URL of one, or a magnet link.
    pub(crate) source: String,
    /// Folder to download into (default: the current folder); the data stays there.
    #[arg(short, long, default_value = ".")]
    pub(crate) output: PathBuf,
    /// The file to play: its index or its path in the torrent (default: the largest audio or
    /// video file).
    #[arg(long, value_name = "PATH|INDEX")]
    pub(crate) file: Option<String>,
    /// Address to serve the file on over HTTP.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:0")]
    pub(crate) http: SocketAddr,
    /// Player command, given the URL as its last argument (default: the first of mpv, vlc,
    /// ffplay found on PATH).
    #[arg(long, value_name = "CMD", conflicts_with = "no_player")]
    pub(crate) player: Option<String>,
    /// Start no player: serve the file and print its URL until Ctrl-C.
    #[arg(long)]
    pub(crate) no_player: bool,
    /// Connect to this peer directly (repeatable).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub(crate) peers: Vec<String>,
    /// Do not announce to the torrent's trackers.
    #[arg(long)]
    pub(crate) no_trackers: bool,
    /// Folder of the identity and groups, for group shares (default: $XDG_DATA_HOME/shoal).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) node: NodeOptions,
}

#[derive(Debug, Args)]
pub(crate) struct TrackerArgs {
    /// Address to serve HTTP announces on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:6969")]
    pub(crate) listen: SocketAddr,
    /// Announce interval told to clients, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub(crate) interval: u64,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Size of the generated data in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 128)]
    pub(crate) size: u64,
    /// Number of downloading peers.
    #[arg(long, default_value_t = 4)]
    pub(crate) peers: usize,
    /// Keep the generated files in this folder (default: a temporary folder, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn set_reads_limits_none_and_file_lists() {
        let cli =
            Cli::try_parse_from(["shoal", "set", "1", "2", "--upload-limit", "none", "--skip", "0,3", "--high", "1"])
                .expect("parses");
        let Command::Set(a) = cli.command else { panic!("not set") };
        assert_eq!(a.ids, ["1", "2"]);
        assert_eq!((a.upload_limit, a.download_limit), (Some(None), None));
        assert_eq!((a.skip, a.high), (vec![0, 3], vec![1]));
        let cli = Cli::try_parse_from(["shoal", "set", "--global", "--seed-ratio", "none", "--seed-time", "3600"])
            .expect("parses");
        let Command::Set(a) = cli.command else { panic!("not set") };
        assert_eq!((a.seed_ratio, a.seed_time), (Some(GoalArg::Default), Some(GoalArg::Value(3600))));
        assert!(Cli::try_parse_from(["shoal", "set", "--seed-ratio", "2"]).is_err(), "ids or --global");
        let cli = Cli::try_parse_from([
            "shoal",
            "set",
            "4",
            "--seed-ratio",
            "unlimited",
            "--seed-idle",
            "600",
            "--labels",
            "tv,hd",
            "--sequential",
            "on",
        ])
        .expect("parses");
        let Command::Set(a) = cli.command else { panic!("not set") };
        assert_eq!((a.seed_ratio, a.seed_idle), (Some(GoalArg::Unlimited), Some(GoalArg::Value(600))));
        assert_eq!((a.labels.as_deref(), a.sequential), (Some("tv,hd"), Some(true)));
        assert_eq!(GoalArg::<f64>::Unlimited.json(false), serde_json::json!("unlimited"));
        assert_eq!(GoalArg::<f64>::Unlimited.json(true), serde_json::Value::Null);
        assert!(Cli::try_parse_from(["shoal", "set", "4", "--sequential", "maybe"]).is_err());
        assert!(Cli::try_parse_from(["shoal", "set", "4", "--seed-idle", "soon"]).is_err());
    }

    #[test]
    fn add_takes_peers_labels_and_order_and_move_takes_a_folder() {
        let cli = Cli::try_parse_from([
            "shoal",
            "add",
            "x.torrent",
            "--peer",
            "127.0.0.1:6881",
            "--peer",
            "[::1]:7000",
            "--labels",
            "a,b",
            "--sequential",
        ])
        .expect("parses");
        let Command::Add(a) = cli.command else { panic!("not add") };
        assert_eq!(a.peers.len(), 2);
        assert_eq!((a.labels, a.sequential), (vec!["a".to_owned(), "b".to_owned()], true));
        assert!(Cli::try_parse_from(["shoal", "add", "x.torrent", "--peer", "nowhere"]).is_err());
        let cli = Cli::try_parse_from(["shoal", "move", "1", "2", "--to", "/srv/new", "--no-move"]).expect("parses");
        let Command::Move(a) = cli.command else { panic!("not move") };
        assert_eq!((a.ids.len(), a.no_move), (2, true));
        assert!(Cli::try_parse_from(["shoal", "move", "1"]).is_err(), "--to is required");
    }
}
