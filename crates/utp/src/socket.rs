//! The tokio driver: one UDP socket carrying every uTP connection of a node, and
//! [`UtpStream`], an `AsyncRead + AsyncWrite` byte stream like a `TcpStream`.
//!
//! One task reads the socket: each datagram goes to its connection, found by the sender's
//! address and the connection id ([`Conn::recv_id`]); a SYN for an unknown one opens a
//! connection (while fewer than [`MAX_CONNECTIONS`] exist, fewer than [`MAX_PER_IP`] from its
//! address, and the accept queue has room, else it is ignored — counted in
//! [`Counters::refused`] — and the dialler times out). After a batch of datagrams (up to [`BATCH`]
//! read without waiting) each connection touched sends what it has — its acks, and the data
//! those acks let out — so one ack answers a burst. The same task runs the connections' timers:
//! every 10 ms while one has data in flight or is opening, every second otherwise, never when
//! there are none. Writers send from their own task: [`UtpStream::poll_write`] cuts packets and
//! sends them at once (`try_send_to`; a full socket buffer drops the datagram, which the
//! connection then treats as lost).
//!
//! The socket's kernel buffers are set to 4 MiB each (what `net.core.rmem_max` allows here) so
//! a burst of a large window is not dropped by the kernel.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};

use crate::conn::{Conn, LOOPBACK_DATAGRAM, State};
use crate::packet::{Packet, Type};

/// Most connections one socket holds (both directions).
pub const MAX_CONNECTIONS: usize = 2_048;
/// Most connections opened by SYNs from one IP address; more are ignored (a flood of SYNs
/// from one host costs at most this much state).
pub const MAX_PER_IP: usize = 32;
/// Incoming connections waiting for [`UtpSocket::accept`].
pub const ACCEPT_QUEUE: usize = 64;
/// Datagrams read before the connections touched send their answers.
const BATCH: usize = 64;
/// Kernel buffer size asked for.
const KERNEL_BUFFER: usize = 4 << 20;
/// Timer period while some connection is busy, and while all are idle.
const BUSY_TICK: Duration = Duration::from_millis(10);
const IDLE_TICK: Duration = Duration::from_secs(1);

type Key = (SocketAddr, u16);

/// A node's uTP endpoint (cheap to clone; the driver stops when the last clone and every
/// stream are gone).
#[derive(Clone, Debug)]
pub struct UtpSocket {
    shared: Arc<Shared>,
    accept: Arc<tokio::sync::Mutex<mpsc::Receiver<(UtpStream, SocketAddr)>>>,
    _driver: Arc<DriverGuard>,
}

#[derive(Debug)]
struct DriverGuard(tokio::task::JoinHandle<()>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug)]
struct Shared {
    udp: UdpSocket,
    local: SocketAddr,
    conns: Mutex<Table>,
    incoming: mpsc::Sender<(UtpStream, SocketAddr)>,
    /// Wakes the driver to run timers soon (a dial, a first packet in flight).
    poke: Notify,
    counters: Mutex<Counters>,
}

/// What the socket has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams that were not uTP packets.
    pub malformed: u64,
    /// SYNs ignored because the socket was full or the accept queue was.
    pub refused: u64,
    /// Datagrams the kernel would not take at once (dropped, then resent as lost).
    pub send_full: u64,
}

#[derive(Debug)]
struct Cell {
    addr: SocketAddr,
    slot: Mutex<Slot>,
}

#[derive(Debug)]
struct Slot {
    conn: Conn,
    read: Option<Waker>,
    write: Option<Waker>,
    open: Option<Waker>,
}

impl Cell {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The connections by address and id, and how many each IP address holds.
#[derive(Debug, Default)]
struct Table {
    map: HashMap<Key, Arc<Cell>>,
    per_ip: HashMap<std::net::IpAddr, usize>,
}

impl Table {
    fn insert(&mut self, key: Key, cell: Arc<Cell>) {
        if self.map.insert(key, cell).is_none() {
            *self.per_ip.entry(key.0.ip()).or_default() += 1;
        }
    }

    fn remove(&mut self, key: &Key) {
        if self.map.remove(key).is_some()
            && let std::collections::hash_map::Entry::Occupied(mut n) = self.per_ip.entry(key.0.ip())
        {
            *n.get_mut() -= 1;
            if *n.get() == 0 {
                n.remove();
            }
        }
    }

    fn held_by(&self, ip: std::net::IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }
}

impl Shared {
    fn conns(&self) -> std::sync::MutexGuard<'_, Table> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends everything the connection has to send now, and wakes whoever can go on.
    fn flush(&self, addr: SocketAddr, slot: &mut Slot, now: Instant) {
        let mut buf = Vec::with_capacity(2048);
        let mut full = 0;
        while slot.conn.poll_transmit(now, &mut buf) {
            match self.udp.try_send_to(&buf, addr) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => full += 1,
                Err(e) => tracing::trace!(%addr, "uTP send failed: {e}"),
            }
        }
        if full > 0 {
            self.counters.lock().unwrap_or_else(|e| e.into_inner()).send_full += full;
        }
        wake(slot);
    }
}

fn wake(slot: &mut Slot) {
    let c = &slot.conn;
    let ended = !matches!(c.state(), State::Connected | State::SynSent);
    if c.state() != State::SynSent
        && let Some(w) = slot.open.take()
    {
        w.wake();
    }
    if (c.readable() > 0 || c.is_eof() || ended)
        && let Some(w) = slot.read.take()
    {
        w.wake();
    }
    if (c.writable() >= 64 * 1024 || ended)
        && let Some(w) = slot.write.take()
    {
        w.wake();
    }
}

impl UtpSocket {
    /// Binds a UDP socket to `addr` and starts the driver.
    pub async fn bind(addr: SocketAddr) -> io::Result<UtpSocket> {
        let domain = if addr.is_ipv6() { socket2::Domain::IPV6 } else { socket2::Domain::IPV4 };
        let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        let _ = socket.set_recv_buffer_size(KERNEL_BUFFER);
        let _ = socket.set_send_buffer_size(KERNEL_BUFFER);
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let udp = UdpSocket::from_std(socket.into())?;
        let local = udp.local_addr()?;
        let (incoming, accept) = mpsc::channel(ACCEPT_QUEUE);
        let shared = Arc::new(Shared {
            udp,
            local,
            conns: Mutex::new(Table::default()),
            incoming,
            poke: Notify::new(),
            counters: Mutex::new(Counters::default()),
        });
        let driver = tokio::spawn(drive(Arc::downgrade(&shared)));
        Ok(UtpSocket {
            shared,
            accept: Arc::new(tokio::sync::Mutex::new(accept)),
            _driver: Arc::new(DriverGuard(driver)),
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// What the socket has counted.
    pub fn counters(&self) -> Counters {
        *self.shared.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections the socket holds now.
    pub fn connections(&self) -> usize {
        self.shared.conns().map.len()
    }

    /// The next incoming connection.
    pub async fn accept(&self) -> io::Result<(UtpStream, SocketAddr)> {
        self.accept.lock().await.recv().await.ok_or_else(|| io::Error::other("the uTP socket has stopped"))
    }

    /// Dials `addr`: SYN, resent after 1 s and 2 s; fails when nothing answered 4 s after the
    /// last, or when the peer resets.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<UtpStream> {
        let now = Instant::now();
        let cell = {
            let mut conns = self.shared.conns();
            if conns.map.len() >= MAX_CONNECTIONS {
                return Err(io::Error::other("too many uTP connections"));
            }
            let mut id: u16 = rand::random();
            while conns.map.contains_key(&(addr, id)) || conns.map.contains_key(&(addr, id.wrapping_add(1))) {
                id = rand::random();
            }
            let cell = Arc::new(Cell {
                addr,
                slot: Mutex::new(Slot {
                    conn: Conn::connect(now, id, addr.ip().is_loopback()),
                    read: None,
                    write: None,
                    open: None,
                }),
            });
            conns.insert((addr, id), cell.clone());
            cell
        };
        self.shared.flush(addr, &mut cell.lock(), now);
        self.shared.poke.notify_one();
        let stream = UtpStream::new(cell.clone(), self.shared.clone());
        std::future::poll_fn(|cx| {
            let mut slot = cell.lock();
            match slot.conn.state() {
                State::SynSent => {
                    slot.open = Some(cx.waker().clone());
                    Poll::Pending
                }
                State::Connected => Poll::Ready(Ok(())),
                State::Reset => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "uTP: the peer reset the connection",
                ))),
                _ => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "uTP: no answer to SYN"))),
            }
        })
        .await?;
        Ok(stream)
    }
}

/// The driver: reads datagrams, runs timers; ends when the socket's handles are gone.
async fn drive(weak: std::sync::Weak<Shared>) {
    let mut buf = vec![0u8; LOOPBACK_DATAGRAM + 2048];
    let mut next_timer: Option<tokio::time::Instant> = None;
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let timer = async {
            match next_timer {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = shared.udp.recv_from(&mut buf) => {
                let mut touched: Vec<Arc<Cell>> = Vec::new();
                let now = Instant::now();
                if let Ok((n, from)) = r {
                    on_datagram(&shared, &buf[..n], from, now, &mut touched);
                    for _ in 1..BATCH {
                        match shared.udp.try_recv_from(&mut buf) {
                            Ok((n, from)) => on_datagram(&shared, &buf[..n], from, now, &mut touched),
                            Err(_) => break,
                        }
                    }
                }
                for cell in touched {
                    let mut slot = cell.lock();
                    shared.flush(cell.addr, &mut slot, now);
                }
                if next_timer.is_none() {
                    next_timer = Some(tokio::time::Instant::now() + BUSY_TICK);
                }
            }
            () = timer => {
                next_timer = timers(&shared);
            }
            () = shared.poke.notified() => {
                let soon = tokio::time::Instant::now() + BUSY_TICK;
                next_timer = Some(next_timer.map_or(soon, |t| t.min(soon)));
            }
        }
    }
}

/// Runs every connection's timers; forgets finished ones. Returns when to run again.
fn timers(shared: &Shared) -> Option<tokio::time::Instant> {
    let now = Instant::now();
    let cells: Vec<(Key, Arc<Cell>)> = shared.conns().map.iter().map(|(k, c)| (*k, c.clone())).collect();
    if cells.is_empty() {
        return None;
    }
    let mut busy = false;
    let mut done = Vec::new();
    for (key, cell) in cells {
        let mut slot = cell.lock();
        slot.conn.on_timer(now);
        shared.flush(cell.addr, &mut slot, now);
        if slot.conn.is_done() {
            if slot.conn.state() == State::TimedOut {
                tracing::debug!(addr = %cell.addr, "uTP connection timed out: {}", slot.conn.describe());
            }
            done.push(key);
        } else if slot.conn.state() == State::SynSent || !slot.conn.all_acked() {
            busy = true;
        }
    }
    if !done.is_empty() {
        let mut conns = shared.conns();
        for key in done {
            conns.remove(&key);
        }
    }
    Some(tokio::time::Instant::now() + if busy { BUSY_TICK } else { IDLE_TICK })
}

fn on_datagram(shared: &Arc<Shared>, data: &[u8], from: SocketAddr, now: Instant, touched: &mut Vec<Arc<Cell>>) {
    let p = match Packet::decode(data) {
        Ok(p) => p,
        Err(e) => {
            tracing::trace!(%from, "not a uTP packet: {e}");
            shared.counters.lock().unwrap_or_else(|e| e.into_inner()).malformed += 1;
            return;
        }
    };
    let id = p.header.conn_id;
    let key = if p.header.ty == Type::Syn { (from, id.wrapping_add(1)) } else { (from, id) };
    let found = shared.conns().map.get(&key).cloned();
    let cell = match found {
        Some(cell) => cell,
        None if p.header.ty == Type::Syn => {
            let mut conns = shared.conns();
            let permit = match shared.incoming.try_reserve() {
                Ok(permit) if conns.map.len() < MAX_CONNECTIONS && conns.held_by(from.ip()) < MAX_PER_IP => permit,
                _ => {
                    drop(conns);
                    shared.counters.lock().unwrap_or_else(|e| e.into_inner()).refused += 1;
                    return;
                }
            };
            let conn = Conn::accept(now, &p, rand::random(), from.ip().is_loopback());
            let cell =
                Arc::new(Cell { addr: from, slot: Mutex::new(Slot { conn, read: None, write: None, open: None }) });
            conns.insert(key, cell.clone());
            permit.send((UtpStream::new(cell.clone(), shared.clone()), from));
            touched.push(cell);
            return;
        }
        None => return,
    };
    cell.lock().conn.handle(now, &p);
    if !touched.iter().any(|c| Arc::ptr_eq(c, &cell)) {
        touched.push(cell);
    }
}

/// Closes the connection when the last half of a stream goes.
#[derive(Debug)]
struct Closer {
    cell: Arc<Cell>,
    shared: Arc<Shared>,
}

impl Drop for Closer {
    fn drop(&mut self) {
        let mut slot = self.cell.lock();
        slot.conn.drop_stream();
        self.shared.flush(self.cell.addr, &mut slot, Instant::now());
        drop(slot);
        self.shared.poke.notify_one();
    }
}

/// A uTP connection as a byte stream.
#[derive(Debug)]
pub struct UtpStream {
    read: UtpRead,
    write: UtpWrite,
}

/// The reading half of a [`UtpStream`].
#[derive(Debug)]
pub struct UtpRead {
    closer: Arc<Closer>,
}

/// The writing half of a [`UtpStream`].
#[derive(Debug)]
pub struct UtpWrite {
    closer: Arc<Closer>,
}

impl UtpStream {
    fn new(cell: Arc<Cell>, shared: Arc<Shared>) -> UtpStream {
        let closer = Arc::new(Closer { cell, shared });
        UtpStream { read: UtpRead { closer: closer.clone() }, write: UtpWrite { closer } }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.read.closer.cell.addr
    }

    /// The payload size of the connection's data packets.
    pub fn payload_size(&self) -> usize {
        self.read.closer.cell.lock().conn.payload_size()
    }

    /// The two halves (no lock between them beyond the connection's own).
    pub fn into_split(self) -> (UtpRead, UtpWrite) {
        (self.read, self.write)
    }
}

fn ended(state: State) -> io::Error {
    match state {
        State::Reset => io::Error::new(io::ErrorKind::ConnectionReset, "uTP: the peer reset the connection"),
        State::TimedOut => io::Error::new(io::ErrorKind::TimedOut, "uTP: the peer stopped answering"),
        _ => io::Error::new(io::ErrorKind::BrokenPipe, "uTP: the connection is closed"),
    }
}

impl AsyncRead for UtpRead {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let Closer { cell, shared } = &*self.closer;
        let mut slot = cell.lock();
        let n = slot.conn.read(buf.initialize_unfilled());
        if n > 0 {
            buf.advance(n);
            // A window update, if the read opened a shut window.
            shared.flush(cell.addr, &mut slot, Instant::now());
            return Poll::Ready(Ok(()));
        }
        if slot.conn.is_eof() || slot.conn.state() == State::Closed {
            return Poll::Ready(Ok(()));
        }
        match slot.conn.state() {
            State::Connected | State::SynSent => {
                slot.read = Some(cx.waker().clone());
                Poll::Pending
            }
            s => Poll::Ready(Err(ended(s))),
        }
    }
}

impl AsyncWrite for UtpWrite {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let Closer { cell, shared } = &*self.closer;
        let mut slot = cell.lock();
        match slot.conn.state() {
            State::Connected | State::SynSent => {}
            s => return Poll::Ready(Err(ended(s))),
        }
        let idle = slot.conn.all_acked();
        let n = slot.conn.write(buf);
        if n == 0 {
            slot.write = Some(cx.waker().clone());
            return Poll::Pending;
        }
        shared.flush(cell.addr, &mut slot, Instant::now());
        drop(slot);
        if idle {
            // The first packet in flight: the driver's retransmission timer must run.
            shared.poke.notify_one();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Closer { cell, shared } = &*self.closer;
        let mut slot = cell.lock();
        slot.conn.close();
        shared.flush(cell.addr, &mut slot, Instant::now());
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for UtpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().read).poll_read(cx, buf)
    }
}

impl AsyncWrite for UtpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().write).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_shutdown(cx)
    }
}
