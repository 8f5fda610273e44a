//! `search.query`: the daemon's own torrents whose names match, then what its index servers
//! (`[search] index`, `--search-index`) answer, each record's signature checked again here.
//! Each index server gets [`INDEX_TIMEOUT`] and at most [`shoal_search::client::MAX_ANSWER`]
//! bytes; one that fails is left out (logged), not an error.

use std::time::Duration;

use shoal_rpc::api::{ApiError, SearchHit};

use crate::{Daemon, lock};

/// How long an index server may take to answer.
pub(crate) const INDEX_TIMEOUT: Duration = Duration::from_secs(5);

/// The lower-case alphanumeric runs of `text` (`Ubuntu-24.04` → `ubuntu`, `24`, `04`).
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect()
}

/// Whether every word of `query` starts a token of `name`.
fn matches(query: &[String], name: &str) -> bool {
    let have = tokens(name);
    query.iter().all(|w| have.iter().any(|t| t.starts_with(w.as_str())))
}

impl Daemon {
    /// The index servers `search.query` asks.
    pub fn set_search_indexes(&self, urls: Vec<String>) {
        let _ = self.inner.search_indexes.set(urls);
    }

    pub(crate) async fn search(&self, words: String, limit: usize) -> Result<Vec<SearchHit>, ApiError> {
        let query: Vec<String> = tokens(&words);
        if query.is_empty() {
            return Err(ApiError::InvalidParams("q: no word to look for".into()));
        }
        let mut hits: Vec<SearchHit> = {
            let entries = lock(&self.inner.entries);
            entries
                .values()
                .filter(|e| matches(&query, &e.name))
                .take(limit)
                .map(|e| SearchHit {
                    name: e.name.clone(),
                    size: e.meta.as_ref().map_or(0, |m| m.info.total_length()),
                    info_hash: e.info_hash.clone(),
                    magnet: match &e.meta {
                        Some(m) => m.magnet().to_string(),
                        None => e.magnet.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                    },
                    publisher: None,
                    source: "local".into(),
                    id: Some(e.id.0),
                    group_only: e.meta.as_ref().is_some_and(|m| m.info.ssl_cert.is_some()),
                })
                .collect()
        };
        let indexes = self.inner.search_indexes.get().cloned().unwrap_or_default();
        if indexes.is_empty() || hits.len() >= limit {
            return Ok(hits);
        }
        let client = shoal_search::client::http_client(INDEX_TIMEOUT).map_err(ApiError::Failed)?;
        let mut asks = tokio::task::JoinSet::new();
        for (i, base) in indexes.iter().enumerate() {
            let (client, base, words) = (client.clone(), base.clone(), words.clone());
            asks.spawn(async move {
                let answer = shoal_search::client::search(&client, &base, &words, limit, &[]).await;
                (i, base, answer)
            });
        }
        let mut answers = Vec::new();
        while let Some(done) = asks.join_next().await {
            if let Ok(answer) = done {
                answers.push(answer);
            }
        }
        // In the order the index servers are listed, whatever order they answered in.
        answers.sort_by_key(|(i, _, _)| *i);
        for (_, base, answer) in answers {
            let (records, bad) = match answer {
                Ok(found) => found,
                Err(e) => {
                    tracing::info!("search: index {base}: {e}");
                    continue;
                }
            };
            if bad > 0 {
                tracing::info!("search: index {base} answered {bad} record(s) that do not check");
            }
            for record in records {
                if hits.len() >= limit || hits.iter().any(|h| h.info_hash == record.body.info_hash) {
                    continue;
                }
                hits.push(SearchHit {
                    magnet: record.magnet(),
                    name: record.body.name,
                    size: record.body.size,
                    info_hash: record.body.info_hash,
                    publisher: Some(record.body.publisher),
                    source: "index".into(),
                    id: None,
                    group_only: record.body.group.is_some(),
                });
            }
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_must_start_a_word_of_the_name() {
        let q = tokens("ubu 24.04");
        assert!(matches(&q, "Ubuntu-24.04-desktop-amd64.iso"));
        assert!(!matches(&q, "Ubuntu-22.04-desktop-amd64.iso"));
        assert!(!matches(&tokens("buntu"), "ubuntu.iso"), "a word matches only at a word's start");
        assert!(tokens("  --  ").is_empty());
    }
}
