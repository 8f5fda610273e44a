//! The search view of the terminal UI (key `F`): type words, see results arrive (first this
//! node's index and its index servers, then what its search neighbours answer), Enter adds the
//! selected result. Pure state, like [`super::app`]: the driver runs the [`Command`]s and hands
//! back each answer as [`super::app::Outcome::Found`].

use crossterm::event::{KeyCode, KeyEvent};
use shoal_rpc::api::SearchHit;

use super::app::Command;

/// What the search view holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Find {
    /// The words being typed.
    pub(crate) query: String,
    /// The words are being typed (else the results are browsed).
    pub(crate) typing: bool,
    /// The words whose results are shown (or arriving).
    pub(crate) asked: Option<String>,
    /// The answer with the neighbours' results has not come yet.
    pub(crate) searching: bool,
    /// The results, best first.
    pub(crate) results: Vec<SearchHit>,
    /// The selected result.
    pub(crate) selected: usize,
}

/// What a key did in the search view.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum FindKey {
    /// Nothing for the driver.
    Stay,
    /// Run this.
    Run(Command),
    /// Back to the list.
    Leave,
}

impl Find {
    /// Opens the view: typing, with the last words kept.
    pub(crate) fn open(&mut self) {
        self.typing = true;
    }

    /// Handles one key.
    pub(crate) fn key(&mut self, key: KeyEvent, ctrl: bool) -> FindKey {
        if self.typing {
            match key.code {
                KeyCode::Enter => {
                    let words = self.query.trim().to_string();
                    if words.is_empty() {
                        return FindKey::Stay;
                    }
                    self.typing = false;
                    self.asked = Some(words.clone());
                    self.searching = true;
                    self.results.clear();
                    self.selected = 0;
                    return FindKey::Run(Command::Search(words));
                }
                KeyCode::Esc if self.asked.is_some() => self.typing = false,
                KeyCode::Esc => return FindKey::Leave,
                KeyCode::Backspace => {
                    self.query.pop();
                }
                KeyCode::Char('u') if ctrl => self.query.clear(),
                KeyCode::Char(c) if !ctrl => self.query.push(c),
                _ => {}
            }
            return FindKey::Stay;
        }
        let last = self.results.len().saturating_sub(1);
        match key.code {
            KeyCode::Esc | KeyCode::Char('h') => return FindKey::Leave,
            KeyCode::Char('q') => return FindKey::Run(Command::Quit),
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => self.selected = (self.selected + 1).min(last),
            KeyCode::Char('/') | KeyCode::Char('i') | KeyCode::Char('F') => self.typing = true,
            KeyCode::Enter => {
                if let Some(hit) = self.results.get(self.selected) {
                    return FindKey::Run(Command::Add(hit.magnet.clone()));
                }
            }
            _ => {}
        }
        FindKey::Stay
    }

    /// Pasted text goes into the words while they are typed.
    pub(crate) fn paste(&mut self, text: &str) {
        if self.typing {
            self.query.extend(text.chars().filter(|c| !c.is_control()));
        }
    }

    /// An answer for `words`: `complete` when the neighbours had their say. An answer to
    /// earlier words is dropped. Returns an error for the status line.
    pub(crate) fn found(
        &mut self,
        words: &str,
        complete: bool,
        result: Result<Vec<SearchHit>, String>,
    ) -> Option<String> {
        if self.asked.as_deref() != Some(words) {
            return None;
        }
        if complete {
            self.searching = false;
        }
        match result {
            Ok(hits) => {
                // The full answer holds the first one's results too: it replaces them, and the
                // selection stays on the same torrent when it can.
                let kept = self.results.get(self.selected).map(|h| h.info_hash.clone());
                self.results = hits;
                self.selected = kept
                    .and_then(|k| self.results.iter().position(|h| h.info_hash == k))
                    .unwrap_or(0)
                    .min(self.results.len().saturating_sub(1));
                None
            }
            Err(e) => {
                self.searching = false;
                Some(format!("search: {e}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn hit(name: &str, hash: char) -> SearchHit {
        SearchHit {
            name: name.into(),
            size: 1,
            info_hash: hash.to_string().repeat(40),
            magnet: format!("magnet:?xt=urn:btih:{}", hash.to_string().repeat(40)),
            peers: Vec::new(),
            publisher: None,
            source: "peers".into(),
            verified: false,
            seeders: None,
            trusted: false,
            id: None,
            group_only: false,
        }
    }

    #[test]
    fn typing_then_enter_searches_and_results_arrive_in_two_steps() {
        let mut f = Find::default();
        f.open();
        assert_eq!(f.key(key(KeyCode::Enter), false), FindKey::Stay, "no word: nothing asked");
        for c in "lecture".chars() {
            f.key(key(KeyCode::Char(c)), false);
        }
        assert_eq!(f.key(key(KeyCode::Enter), false), FindKey::Run(Command::Search("lecture".into())));
        assert!(f.searching && !f.typing);
        // This node's index answers first, then the neighbours; the selection keeps its torrent.
        f.found("lecture", false, Ok(vec![hit("lecture 1", 'a')]));
        assert!(f.searching);
        f.key(key(KeyCode::Down), false);
        f.found("lecture", true, Ok(vec![hit("lecture 2", 'b'), hit("lecture 1", 'a')]));
        assert!(!f.searching);
        assert_eq!(f.results.len(), 2);
        assert_eq!(f.results[f.selected].name, "lecture 1");
        // A late answer to other words is dropped.
        f.found("other", true, Ok(Vec::new()));
        assert_eq!(f.results.len(), 2);
        // Enter adds the selected result by its magnet link.
        assert_eq!(f.key(key(KeyCode::Enter), false), FindKey::Run(Command::Add(hit("", 'a').magnet)));
        f.key(key(KeyCode::Up), false);
        assert_eq!(f.key(key(KeyCode::Enter), false), FindKey::Run(Command::Add(hit("", 'b').magnet)));
    }

    #[test]
    fn esc_goes_back_step_by_step_and_errors_reach_the_status_line() {
        let mut f = Find::default();
        f.open();
        assert_eq!(f.key(key(KeyCode::Esc), false), FindKey::Leave, "nothing asked yet: back to the list");
        f.open();
        f.paste("ubuntu\n");
        assert_eq!(f.query, "ubuntu");
        f.key(key(KeyCode::Enter), false);
        assert_eq!(
            f.found("ubuntu", true, Err("the daemon is gone".into())),
            Some("search: the daemon is gone".into())
        );
        assert!(!f.searching);
        // Editing the words again, then Esc: back to the results, then to the list.
        f.key(key(KeyCode::Char('/')), false);
        assert!(f.typing);
        f.key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL), true);
        assert_eq!(f.query, "");
        assert_eq!(f.key(key(KeyCode::Esc), false), FindKey::Stay);
        assert!(!f.typing);
        assert_eq!(f.key(key(KeyCode::Esc), false), FindKey::Leave);
    }
}
