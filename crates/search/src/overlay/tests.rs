//! The overlay's policy in virtual time: nodes joined by a message queue with no delay.

use super::*;

/// A network of nodes; node `i` knows node `j` as peer key `j`.
struct Net {
    nodes: Vec<Node>,
    /// Each node's items: (item number, name).
    items: Vec<Vec<(usize, String)>>,
    now: Instant,
    /// Query and results messages delivered.
    messages: u64,
    /// Own results: (node, query id) → item numbers.
    results: HashMap<(usize, QueryId), Vec<usize>>,
    /// Answers given: (node, query id) → how many times.
    answers: HashMap<(usize, QueryId), usize>,
    disconnects: Vec<(usize, PeerKey, String)>,
    /// Tables are not passed on (plain flooding).
    drop_tables: bool,
}

fn matches(words: &str, name: &str) -> bool {
    let have: Vec<String> = table::tokens(name).collect();
    table::tokens(words).all(|w| have.iter().any(|t| t.starts_with(&w)))
}

impl Net {
    fn new(n: usize, config: Config) -> Net {
        Net {
            nodes: (0..n).map(|i| Node::new(config.clone(), i as u64 * 7919 + 1)).collect(),
            items: vec![Vec::new(); n],
            now: Instant::now(),
            messages: 0,
            results: HashMap::new(),
            answers: HashMap::new(),
            disconnects: Vec::new(),
            drop_tables: false,
        }
    }

    fn link(&mut self, a: usize, b: usize) {
        let now = self.now;
        assert!(self.nodes[a].connected(b as u64, now) && self.nodes[b].connected(a as u64, now));
    }

    fn add_item(&mut self, node: usize, item: usize, name: &str) {
        self.items[node].push((item, name.to_string()));
        let mut own = Bloom::default();
        for (_, name) in &self.items[node] {
            own.insert_text(name);
        }
        self.nodes[node].set_own(own);
    }

    /// Carries out every action until nothing is left to do at this instant.
    fn settle(&mut self) {
        let mut queue: VecDeque<(usize, usize, Message)> = VecDeque::new();
        loop {
            for i in 0..self.nodes.len() {
                for action in self.nodes[i].take_actions() {
                    match action {
                        Action::Send(to, message) => queue.push_back((to as usize, i, message)),
                        Action::Answer { id, words, want, to } => {
                            *self.answers.entry((i, id)).or_default() += 1;
                            let records: Vec<Vec<u8>> = self.items[i]
                                .iter()
                                .filter(|(_, name)| matches(&words, name))
                                .take(want)
                                .map(|(n, _)| n.to_string().into_bytes())
                                .collect();
                            if !records.is_empty() {
                                queue.push_back((to as usize, i, Message::Hits { id, records, holder: None }));
                            }
                        }
                        Action::Results { id, records, .. } => {
                            let got = self.results.entry((i, id)).or_default();
                            got.extend(records.iter().map(|r| String::from_utf8_lossy(r).parse::<usize>().expect("n")));
                        }
                        Action::Disconnect(peer, why) => self.disconnects.push((i, peer, why)),
                    }
                }
            }
            let Some((to, from, message)) = queue.pop_front() else { break };
            match &message {
                Message::Table(_) if self.drop_tables => continue,
                Message::Table(_) => {}
                _ => self.messages += 1,
            }
            let now = self.now;
            // What it does is carried out (at the top of the loop) before the next delivery.
            self.nodes[to].received(from as u64, message, now);
        }
    }

    /// `ms` milliseconds pass in 20 ms steps.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms.div_ceil(20) {
            self.now += Duration::from_millis(20);
            let now = self.now;
            for node in &mut self.nodes {
                node.tick(now);
            }
            self.settle();
        }
    }

    /// Asks `words` at `node`; the results after `ms` milliseconds and the messages it cost.
    fn ask(&mut self, node: usize, words: &str, want: u16, hop_limit: u8, ms: u64) -> (Vec<usize>, u64) {
        let before = self.messages;
        let now = self.now;
        let id = self.nodes[node].query(words, want, hop_limit, now);
        self.settle();
        self.run(ms);
        (self.results.remove(&(node, id)).unwrap_or_default(), self.messages - before)
    }
}

#[test]
fn a_query_is_answered_once_per_node_whatever_the_loops_and_results_come_back_the_way_it_came() {
    // A ring of 8 with chords: many loops. No tables: every query floods.
    let mut net = Net::new(8, Config::default());
    net.drop_tables = true;
    for i in 0..8 {
        net.link(i, (i + 1) % 8);
    }
    net.link(0, 4);
    net.link(2, 6);
    net.link(1, 5);
    for i in 0..8 {
        net.add_item(i, i, &format!("lecture {i} notes"));
    }
    let now = net.now;
    let id = net.nodes[0].query("lecture", 20, 4, now);
    net.settle();
    net.run(1000);
    let mut got = net.results.remove(&(0, id)).expect("results");
    got.sort();
    assert_eq!(got, (1..8).collect::<Vec<_>>(), "every other node's item, each once");
    for i in 1..8 {
        assert_eq!(net.answers.get(&(i, id)), Some(&1), "node {i} answered {:?} times", net.answers.get(&(i, id)));
    }
    assert_eq!(net.answers.get(&(0, id)), None, "the asking node does not answer itself");
    let duplicates: u64 = net.nodes.iter().map(|n| n.stats().duplicates).sum();
    assert!(duplicates > 0, "the loops did bring second copies, and they were dropped");
}

#[test]
fn the_hop_limit_bounds_how_far_a_query_goes() {
    let mut net = Net::new(6, Config::default());
    for i in 0..5 {
        net.link(i, i + 1);
    }
    net.add_item(4, 40, "far away");
    net.add_item(5, 50, "farther away");
    net.run(6000); // tables settle, one level per second
    assert_eq!(net.ask(0, "far", 10, 4, 500).0, [40], "4 hops reach node 4, not node 5");
    assert_eq!(net.ask(0, "farther", 10, 4, 500).0, Vec::<usize>::new());
    assert_eq!(net.ask(0, "far", 10, 3, 500).0, Vec::<usize>::new());
    assert_eq!(net.ask(1, "farther", 10, 4, 500).0, [50]);
}

#[test]
fn tables_send_a_query_only_down_paths_that_can_answer_it() {
    // A star of stars: node 0 in the middle, 1..=4 around it, each with 3 leaves.
    let mut net = Net::new(17, Config::default());
    for hub in 1..=4 {
        net.link(0, hub);
        for leaf in 0..3 {
            net.link(hub, 4 + (hub - 1) * 3 + leaf + 1);
        }
    }
    let words = [
        "", "acorn", "birch", "cedar", "dogwood", "elm", "fir", "ginkgo", "hazel", "ivy", "juniper", "kapok", "larch",
        "maple", "nutmeg", "olive", "pine",
    ];
    for (node, word) in words.iter().enumerate().skip(1) {
        net.add_item(node, node, &format!("{word} common"));
    }
    net.run(6000);
    // Node 5 is a leaf of hub 1; node 14 one of hub 4: 14 → 4 → 0 → 1 → 5.
    let (got, messages) = net.ask(14, "elm", 10, 4, 500);
    assert_eq!(got, [5]);
    assert_eq!(messages, 4 + 4, "four hops out and four back, no other message: {messages}");
    // A word every node has goes everywhere within reach, and the answers are capped.
    let (got, _) = net.ask(14, "common", 5, 4, 500);
    assert_eq!(got.len(), 5, "{got:?}");
}

#[test]
fn a_neighbour_over_its_query_rate_is_cut_off_and_then_dropped() {
    let config = Config { query_rate: 10.0, query_burst: 20.0, strikes: 50, ..Config::default() };
    let mut node = Node::new(config, 1);
    let now = Instant::now();
    node.connected(7, now);
    for i in 0..100u64 {
        let id = i.to_be_bytes();
        node.received(7, Message::Query { id, words: "x".into(), ttl: 0, want: 1 }, now);
    }
    assert_eq!(node.stats().queries, 20, "the burst");
    assert_eq!(node.stats().rate_limited, 80);
    let cut = node.take_actions().into_iter().filter(|a| matches!(a, Action::Disconnect(7, _))).count();
    assert!(cut >= 1, "a neighbour 30 over its strikes is dropped");
    // A second later it may send ten more.
    let mut node = Node::new(Config { query_rate: 10.0, query_burst: 20.0, ..Config::default() }, 1);
    node.connected(7, now);
    for i in 0..20u64 {
        node.received(7, Message::Query { id: i.to_be_bytes(), words: "x".into(), ttl: 0, want: 1 }, now);
    }
    for i in 20..40u64 {
        node.received(
            7,
            Message::Query { id: i.to_be_bytes(), words: "x".into(), ttl: 0, want: 1 },
            now + Duration::from_secs(1),
        );
    }
    assert_eq!(node.stats().queries, 30);
}

#[test]
fn results_are_taken_only_from_where_the_query_went_and_only_as_many_as_asked() {
    let mut node = Node::new(Config::default(), 1);
    let now = Instant::now();
    node.connected(1, now);
    node.connected(2, now);
    // Node 1 asks; the query floods to 2 (no table yet).
    node.received(1, Message::Query { id: *b"qqqqqqqq", words: "abc".into(), ttl: 2, want: 3 }, now);
    let actions = node.take_actions();
    assert!(
        actions.contains(&Action::Send(2, Message::Query { id: *b"qqqqqqqq", words: "abc".into(), ttl: 1, want: 3 }))
    );
    // Results from 2 go back to 1, at most 3 in all.
    let five: Vec<Vec<u8>> = (0..5).map(|i| vec![i]).collect();
    let holder = Some(Holder::Addr("127.0.0.1:7000".parse().expect("addr")));
    let hits = |records: &[Vec<u8>]| Message::Hits { id: *b"qqqqqqqq", records: records.to_vec(), holder };
    node.received(2, hits(&five), now);
    node.received(2, hits(&five), now);
    let back: Vec<Action> = node.take_actions();
    assert_eq!(back, [Action::Send(1, hits(&five[..3]))], "the holder travels with them");
    // Results from the node that asked, or for a query never seen, are dropped.
    node.received(1, hits(&five), now);
    node.received(2, Message::Hits { id: *b"zzzzzzzz", records: five, holder: None }, now);
    assert!(node.take_actions().is_empty());
    assert_eq!(node.stats().unsolicited, 2);
}

#[test]
fn a_table_is_taken_at_most_once_per_gap_and_own_queries_are_rate_limited_too() {
    let mut node = Node::new(Config::default(), 1);
    let now = Instant::now();
    node.connected(1, now);
    let table = |word: &str| {
        let mut own = Bloom::default();
        own.insert_text(word);
        Message::Table(Table { levels: vec![own] })
    };
    node.received(1, table("alpha"), now);
    node.received(1, table("beta"), now + Duration::from_millis(500));
    assert_eq!((node.stats().tables_taken, node.stats().rate_limited), (1, 1));
    node.received(1, table("beta"), now + Duration::from_secs(2));
    assert_eq!(node.stats().tables_taken, 2);
    // Own queries: the burst goes out, the rest are not sent, and a second later some more.
    let sent = |node: &mut Node| {
        node.take_actions().iter().filter(|a| matches!(a, Action::Send(_, Message::Query { .. }))).count()
    };
    node.take_actions();
    for _ in 0..30 {
        node.query("beta", 1, 2, now);
    }
    assert_eq!(sent(&mut node), OWN_QUERY_BURST as usize);
    assert_eq!(node.stats().own_limited, 30 - OWN_QUERY_BURST as u64);
    node.query("beta", 1, 2, now + Duration::from_secs(1));
    assert_eq!(sent(&mut node), 1);
}

#[test]
fn at_most_max_routes_queries_are_remembered() {
    let mut node = Node::new(Config { max_routes: 100, query_burst: 1e9, ..Config::default() }, 1);
    let now = Instant::now();
    node.connected(1, now);
    for i in 0..1000u64 {
        node.received(1, Message::Query { id: i.to_be_bytes(), words: "x".into(), ttl: 0, want: 1 }, now);
    }
    assert_eq!(node.routes.len(), 100);
    assert_eq!(node.order.len(), 100);
    node.tick(now + Duration::from_secs(31));
    assert!(node.routes.is_empty() && node.order.is_empty(), "they expire");
}

/// Fifty nodes, a random graph of degree 4 to 8, 2,000 items placed by a Zipf popularity (most
/// on one or two nodes); 200 queries, each for one item chosen uniformly (the rare ones as
/// often as the popular ones).
fn fifty(hop_limit: u8) -> (f64, f64) {
    let mut rng = SplitMix64(42);
    let n = 50;
    let mut net = Net::new(n, Config::default());
    let mut degree = vec![0usize; n];
    let mut linked = std::collections::HashSet::new();
    let target: Vec<usize> = (0..n).map(|_| 4 + rng.below(5)).collect();
    // A ring keeps it connected; random chords bring each node to its degree.
    for i in 0..n {
        let j = (i + 1) % n;
        net.link(i, j);
        linked.insert((i.min(j), i.max(j)));
        degree[i] += 1;
        degree[j] += 1;
    }
    for _ in 0..10_000 {
        let (a, b) = (rng.below(n), rng.below(n));
        if a == b || degree[a] >= target[a] || degree[b] >= target[b] || !linked.insert((a.min(b), a.max(b))) {
            continue;
        }
        net.link(a, b);
        degree[a] += 1;
        degree[b] += 1;
    }
    let vocabulary: Vec<String> = (0..3000).map(|i| format!("w{:x}", rng.next_u64() % 0xffff_ffff + i)).collect();
    let mut names = Vec::new();
    for item in 0..2000usize {
        let name = (0..3).map(|_| vocabulary[rng.below(vocabulary.len())].as_str()).collect::<Vec<_>>().join(" ");
        let copies = ((n as f64 / (item as f64 + 1.0).powf(0.8)).round() as usize).clamp(1, n);
        let mut holders = std::collections::HashSet::new();
        while holders.len() < copies {
            holders.insert(rng.below(n));
        }
        for h in holders {
            net.add_item(h, item, &name);
        }
        names.push(name);
    }
    net.run(8000);
    let (mut found, mut messages) = (0, 0);
    for _ in 0..200 {
        let item = rng.below(names.len());
        let from = rng.below(n);
        if net.items[from].iter().any(|(i, _)| *i == item) {
            found += 1; // it has it already
            continue;
        }
        let (got, cost) = net.ask(from, &names[item], 10, hop_limit, 300);
        found += usize::from(got.contains(&item));
        messages += cost;
    }
    (found as f64 / 200.0, messages as f64 / 200.0)
}

#[test]
fn fifty_nodes_find_rare_items_with_few_messages() {
    let (recall, messages) = fifty(4);
    eprintln!("hop limit 4: recall {recall:.3}, {messages:.1} messages per query");
    assert!(recall >= 0.95, "recall {recall}");
    assert!(messages <= 60.0, "{messages} messages per query");
    let (recall2, _) = fifty(2);
    assert!(recall2 < recall, "two hops reach fewer nodes ({recall2} vs {recall})");
}
