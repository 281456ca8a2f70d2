//! Who is listening: streams indexed by user, exact topic and topic pattern.
//!
//! Routing an event is a hash lookup per target user and per target topic, plus a walk of the
//! pattern trie that is proportional to the topic's depth, never to the number of streams.
//! Broadcasts visit every stream once.

use std::collections::HashMap;
use std::sync::Arc;

use crate::conn::Conn;
use crate::event::Targets;
use crate::labels::Labels;
use crate::topic::Segment;

#[derive(Default)]
pub(crate) struct Registry {
    conns: HashMap<u64, Arc<Conn>>,
    users: HashMap<Arc<str>, Vec<Arc<Conn>>>,
    exact: HashMap<Box<str>, Vec<Arc<Conn>>>,
    patterns: TrieNode,
    subscriptions: usize,
    /// Filtered streams ([`crate::labels`]): reached by labelled events only, so they are in
    /// none of the indexes above (and broadcasts do not visit them).
    filtered: HashMap<u64, Arc<Conn>>,
}

impl Registry {
    pub fn insert(&mut self, conn: Arc<Conn>) {
        if conn.filter.is_some() {
            self.filtered.insert(conn.id, conn);
            return;
        }
        if let Some(user) = &conn.user {
            self.users
                .entry(user.clone())
                .or_default()
                .push(conn.clone());
        }
        for pattern in conn.patterns.iter() {
            if pattern.is_exact() {
                self.exact
                    .entry(pattern.as_str().into())
                    .or_default()
                    .push(conn.clone());
            } else {
                self.patterns.insert(pattern.segments(), conn.clone());
            }
        }
        self.subscriptions += conn.patterns.len();
        self.conns.insert(conn.id, conn);
    }

    pub fn remove(&mut self, conn: &Conn) {
        if self.filtered.remove(&conn.id).is_some() {
            return;
        }
        if self.conns.remove(&conn.id).is_none() {
            return;
        }
        if let Some(user) = &conn.user {
            remove_from(&mut self.users, user, conn.id);
        }
        for pattern in conn.patterns.iter() {
            if pattern.is_exact() {
                remove_from(&mut self.exact, pattern.as_str(), conn.id);
            } else {
                self.patterns.remove(pattern.segments(), conn.id);
            }
        }
        self.subscriptions -= conn.patterns.len();
    }

    pub fn len(&self) -> usize {
        self.conns.len() + self.filtered.len()
    }

    pub fn subscriptions(&self) -> usize {
        self.subscriptions
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn topic_count(&self) -> usize {
        self.exact.len() + self.patterns.count_patterns()
    }

    pub fn streams_of(&self, user: &str) -> usize {
        self.users.get(user).map_or(0, Vec::len)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Conn>> {
        self.conns.values().chain(self.filtered.values())
    }

    /// Calls `deliver` once for every filtered stream whose filter accepts `labels`.
    pub fn for_each_accepting(&self, labels: &Labels, mut deliver: impl FnMut(&Arc<Conn>)) {
        for conn in self.filtered.values() {
            if conn.filter.as_ref().is_some_and(|f| f.accepts(labels)) {
                deliver(conn);
            }
        }
    }

    /// Calls `visit` once for every stream subscribed to `topic` (exactly or by a pattern).
    pub fn for_each_subscriber(&self, topic: &str, visit: impl FnMut(&Arc<Conn>)) {
        let mut matched: Vec<&Arc<Conn>> = Vec::new();
        if let Some(conns) = self.exact.get(topic) {
            matched.extend(conns);
        }
        let segments: Vec<&str> = topic.split('/').collect();
        self.patterns.collect(&segments, &mut matched);
        matched.sort_unstable_by_key(|c| c.id);
        matched.dedup_by_key(|c| c.id);
        matched.into_iter().for_each(visit);
    }

    /// Calls `deliver` once for every stream the targets reach (each stream at most once).
    pub fn for_each_recipient(&self, targets: &Targets, deliver: impl FnMut(&Arc<Conn>)) {
        if targets.is_broadcast() {
            self.conns.values().for_each(deliver);
            return;
        }
        // The most common event: for one user. No duplicates are possible, nothing to collect.
        if let ([user], []) = (&*targets.users, &*targets.topics) {
            if let Some(conns) = self.users.get(user) {
                conns.iter().for_each(deliver);
            }
            return;
        }
        let mut lists: Vec<&[Arc<Conn>]> = Vec::new();
        for user in targets.users.iter() {
            if let Some(conns) = self.users.get(user) {
                lists.push(conns);
            }
        }
        let mut matched: Vec<&Arc<Conn>> = Vec::new();
        for topic in targets.topics.iter() {
            if let Some(conns) = self.exact.get(topic) {
                lists.push(conns);
            }
            let segments: Vec<&str> = topic.split('/').collect();
            self.patterns.collect(&segments, &mut matched);
        }
        // The common case, one user or one topic: no duplicates are possible.
        if matched.is_empty() && lists.len() == 1 {
            lists[0].iter().for_each(deliver);
            return;
        }
        matched.extend(lists.into_iter().flatten());
        matched.sort_unstable_by_key(|c| c.id);
        matched.dedup_by_key(|c| c.id);
        matched.into_iter().for_each(deliver);
    }
}

fn remove_from<K>(map: &mut HashMap<K, Vec<Arc<Conn>>>, key: &str, id: u64)
where
    K: std::borrow::Borrow<str> + std::hash::Hash + Eq,
{
    if let Some(list) = map.get_mut(key) {
        list.retain(|c| c.id != id);
        if list.is_empty() {
            map.remove(key);
        }
    }
}

/// A trie over pattern segments; `*` and `**` have their own slots at each node.
#[derive(Default)]
struct TrieNode {
    literal: HashMap<Box<str>, TrieNode>,
    star: Option<Box<TrieNode>>,
    /// Streams whose pattern ends exactly at this node.
    here: Vec<Arc<Conn>>,
    /// Streams whose pattern continues with `**` from this node.
    globstar: Vec<Arc<Conn>>,
}

impl TrieNode {
    fn insert(&mut self, segments: &[Segment], conn: Arc<Conn>) {
        match segments.split_first() {
            None => self.here.push(conn),
            Some((Segment::Globstar, _)) => self.globstar.push(conn),
            Some((Segment::Star, rest)) => self.star.get_or_insert_default().insert(rest, conn),
            Some((Segment::Literal(lit), rest)) => self
                .literal
                .entry(lit.clone())
                .or_default()
                .insert(rest, conn),
        }
    }

    /// Removes stream `id` under `segments`; returns true when this node became empty.
    fn remove(&mut self, segments: &[Segment], id: u64) -> bool {
        match segments.split_first() {
            None => self.here.retain(|c| c.id != id),
            Some((Segment::Globstar, _)) => self.globstar.retain(|c| c.id != id),
            Some((Segment::Star, rest)) => {
                if let Some(star) = &mut self.star {
                    if star.remove(rest, id) {
                        self.star = None;
                    }
                }
            }
            Some((Segment::Literal(lit), rest)) => {
                if let Some(child) = self.literal.get_mut(lit) {
                    if child.remove(rest, id) {
                        self.literal.remove(lit);
                    }
                }
            }
        }
        self.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.here.is_empty()
            && self.globstar.is_empty()
            && self.star.is_none()
            && self.literal.is_empty()
    }

    fn collect<'a>(&'a self, topic: &[&str], out: &mut Vec<&'a Arc<Conn>>) {
        let Some((first, rest)) = topic.split_first() else {
            out.extend(self.here.iter());
            return;
        };
        out.extend(self.globstar.iter());
        if let Some(child) = self.literal.get(*first) {
            child.collect(rest, out);
        }
        if let Some(star) = &self.star {
            star.collect(rest, out);
        }
    }

    fn count_patterns(&self) -> usize {
        usize::from(!self.here.is_empty())
            + usize::from(!self.globstar.is_empty())
            + self.star.as_ref().map_or(0, |s| s.count_patterns())
            + self
                .literal
                .values()
                .map(TrieNode::count_patterns)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::QueueLimits;
    use crate::topic::Pattern;

    fn conn(id: u64, user: Option<&str>, patterns: &[&str]) -> Arc<Conn> {
        Arc::new(Conn::new(
            id,
            user.map(Arc::from),
            patterns
                .iter()
                .map(|p| Pattern::parse(p).unwrap())
                .collect(),
            None,
            QueueLimits {
                max_frames: 8,
                max_bytes: 1024,
            },
            0,
        ))
    }

    fn targets(users: &[&str], topics: &[&str]) -> Targets {
        Targets {
            users: users.iter().map(|u| Arc::from(*u)).collect(),
            topics: topics.iter().map(|t| Box::from(*t)).collect(),
        }
    }

    fn recipients(reg: &Registry, t: &Targets) -> Vec<u64> {
        let mut out = Vec::new();
        reg.for_each_recipient(t, |c| out.push(c.id));
        out.sort();
        out
    }

    #[test]
    fn routes_by_user_topic_pattern_and_broadcast_once_each() {
        let mut reg = Registry::default();
        reg.insert(conn(1, Some("alice"), &[]));
        reg.insert(conn(2, Some("alice"), &["orders/1"]));
        reg.insert(conn(3, Some("bob"), &["orders/*", "orders/**"]));
        reg.insert(conn(4, None, &["news/**"]));
        assert_eq!(recipients(&reg, &targets(&["alice"], &[])), vec![1, 2]);
        assert_eq!(recipients(&reg, &targets(&["bob"], &[])), vec![3]);
        assert_eq!(
            recipients(&reg, &targets(&["carol"], &[])),
            Vec::<u64>::new()
        );
        assert_eq!(recipients(&reg, &targets(&[], &["orders/1"])), vec![2, 3]);
        assert_eq!(recipients(&reg, &targets(&[], &["orders/1/x"])), vec![3]);
        assert_eq!(recipients(&reg, &targets(&["bob"], &["orders/2"])), vec![3]);
        assert_eq!(recipients(&reg, &targets(&[], &["news/a/b"])), vec![4]);
        assert_eq!(recipients(&reg, &targets(&[], &[])), vec![1, 2, 3, 4]);
        // orders/* is covered by orders/** on the same stream, so it is not registered twice.
        assert_eq!(reg.subscriptions(), 3);
        assert_eq!(reg.topic_count(), 3);
    }

    #[test]
    fn removal_cleans_every_index() {
        let mut reg = Registry::default();
        let c = conn(1, Some("alice"), &["a/*", "a/b", "x/**"]);
        reg.insert(c.clone());
        reg.remove(&c);
        assert_eq!(reg.len(), 0);
        assert_eq!(reg.user_count(), 0);
        assert_eq!(reg.topic_count(), 0);
        assert_eq!(reg.subscriptions(), 0);
        assert!(reg.patterns.is_empty());
        assert_eq!(recipients(&reg, &targets(&[], &["a/b"])), Vec::<u64>::new());
    }
}
