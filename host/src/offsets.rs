//! Moving a route's consumer-group offsets: `smt reset` while `smt` is
//! stopped, and the target of a live rewind (`POST /routes/{name}/rewind`,
//! done by `source`). A target — `earliest`, `latest`, an offset, a time —
//! is resolved for every partition of the route and checked against the
//! partition's range before anything moves: bad input changes nothing.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::config::{Config, TopicMatcher};
use crate::kafka;

/// Where to move a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The first record the partition still holds.
    Earliest,
    /// The end: skip everything not processed yet.
    Latest,
    /// This offset (within the partition's range, end included).
    Offset(i64),
    /// The first record at or after this time (ms since the Unix epoch); the end when there is none.
    Time(i64),
}

impl Target {
    /// `earliest`, `latest` or an offset.
    pub fn parse_offset(s: &str) -> Result<Target, String> {
        match s {
            "earliest" => Ok(Target::Earliest),
            "latest" => Ok(Target::Latest),
            n => n
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Target::Offset)
                .ok_or_else(|| {
                    format!("`{n}` is not an offset: give earliest, latest or a number ≥ 0")
                }),
        }
    }

    /// Milliseconds since the Unix epoch, or an RFC 3339 time
    /// (`2026-12-05T14:00:00Z`, `2026-12-05T15:00:00+01:00`).
    pub fn parse_time(s: &str) -> Result<Target, String> {
        if let Ok(ms) = s.parse::<i64>() {
            return Ok(Target::Time(ms));
        }
        parse_rfc3339(s)
            .map(Target::Time)
            .ok_or_else(|| format!("`{s}` is not a time: give RFC 3339 (2026-12-05T14:00:00Z) or milliseconds since the epoch"))
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` → ms since the Unix epoch.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        millis = padded.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            sign * (oh * 60 + om)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// One partition's move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset before (`None`: nothing committed).
    pub from: Option<i64>,
    pub to: i64,
    /// The partition's range: first offset held, end.
    pub low: i64,
    pub high: i64,
}

/// Why a move was refused; nothing moved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    /// No route of that name.
    #[error("no route named `{0}` (routes: {1})")]
    UnknownRoute(String, String),
    /// The target is outside a partition's range, or the partition does not exist.
    #[error("{0}")]
    OutOfRange(String),
    /// The group has members (offline reset) or no partition of the route
    /// is assigned here (live rewind).
    #[error("{0}")]
    Conflict(String),
    /// Kafka did not answer or refused.
    #[error("{0}")]
    Kafka(String),
}

/// The partitions of the topics `matcher` takes, as the brokers know them.
pub fn route_partitions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    matcher: &TopicMatcher,
    timeout: Duration,
) -> Result<Vec<(String, i32)>, MoveError> {
    let md = consumer
        .fetch_metadata(None, timeout)
        .map_err(|e| MoveError::Kafka(format!("cannot read the topics' metadata: {e}")))?;
    let mut keys: Vec<(String, i32)> = md
        .topics()
        .iter()
        .filter(|t| matcher.matches(t.name()))
        .flat_map(|t| t.partitions().iter().map(|p| (t.name().to_owned(), p.id())))
        .collect();
    keys.sort();
    Ok(keys)
}

/// Resolves `target` for each of `keys` and checks it against the
/// partition's range. Reads only.
pub fn plan<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    keys: &[(String, i32)],
    target: Target,
    timeout: Duration,
) -> Result<Vec<Move>, MoveError> {
    let mut committed_tpl = TopicPartitionList::new();
    for (t, p) in keys {
        committed_tpl.add_partition(t, *p);
    }
    let committed = consumer
        .committed_offsets(committed_tpl, timeout)
        .map_err(|e| MoveError::Kafka(format!("cannot read the committed offsets: {e}")))?;
    let mut moves = Vec::new();
    for (topic, partition) in keys {
        let (low, high) = consumer
            .fetch_watermarks(topic, *partition, timeout)
            .map_err(|e| {
                MoveError::Kafka(format!("cannot read the range of {topic}/{partition}: {e}"))
            })?;
        let to = match target {
            Target::Earliest => low,
            Target::Latest => high,
            Target::Offset(n) if (low..=high).contains(&n) => n,
            Target::Offset(n) => {
                return Err(MoveError::OutOfRange(format!(
                    "offset {n} is out of range for {topic}/{partition}, which holds offsets {low}..{high} (end {high})"
                )))
            }
            Target::Time(ms) => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(topic, *partition, Offset::Offset(ms))
                    .map_err(|e| MoveError::Kafka(e.to_string()))?;
                let found = consumer.offsets_for_times(tpl, timeout).map_err(|e| {
                    MoveError::Kafka(format!(
                        "cannot look up time {ms} in {topic}/{partition}: {e}"
                    ))
                })?;
                match found.elements().first().map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    // No record at or after that time: the end.
                    _ => high,
                }
            }
        };
        let from = committed
            .find_partition(topic, *partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        moves.push(Move {
            topic: topic.clone(),
            partition: *partition,
            from,
            to,
            low,
            high,
        });
    }
    Ok(moves)
}

/// The moves as a list to commit.
pub fn to_commit(moves: &[Move]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for m in moves {
        // An element is only refused for a bad offset value; `to` is ≥ 0.
        let _ = tpl.add_partition_offset(&m.topic, m.partition, Offset::Offset(m.to));
    }
    tpl
}

/// `smt reset`: what to move.
pub struct Reset<'a> {
    pub route: &'a str,
    pub target: Target,
    /// Only this partition of the route's topics.
    pub partition: Option<i32>,
    /// Show the moves, commit nothing.
    pub dry_run: bool,
    pub timeout: Duration,
}

/// `smt reset`: moves the committed offsets of a route's partitions while
/// no `smt` of the group runs. Refuses while the group has members.
pub fn reset(config: &Config, r: &Reset<'_>) -> Result<Vec<Move>, MoveError> {
    let names = config.route_names();
    let index = names
        .iter()
        .position(|n| n == r.route)
        .ok_or_else(|| MoveError::UnknownRoute(r.route.to_owned(), names.join(", ")))?;
    let matcher = TopicMatcher::new(&config.routes[index])
        .map_err(|e| MoveError::Kafka(format!("the route's topic-pattern: {e}")))?;
    let consumer: BaseConsumer = kafka::client_config(config, kafka::Role::Consumer)
        .create()
        .map_err(|e| {
            MoveError::Kafka(format!(
                "cannot create a Kafka client: {}",
                kafka::creation_error(&e)
            ))
        })?;
    let group = &config.kafka.group_id;
    let groups = consumer
        .fetch_group_list(Some(group), r.timeout)
        .map_err(|e| {
            MoveError::Kafka(format!("cannot describe the consumer group `{group}`: {e}"))
        })?;
    if let Some(g) = groups.groups().iter().find(|g| g.name() == group.as_str()) {
        if !g.members().is_empty() {
            let clients: Vec<String> = g
                .members()
                .iter()
                .map(|m| format!("{} ({})", m.client_id(), m.client_host()))
                .collect();
            return Err(MoveError::Conflict(format!(
                "the consumer group `{group}` has {} active member(s): {}; stop every `smt run` of the group first, or rewind while it runs: POST /routes/{}/rewind on the admin endpoint",
                clients.len(),
                clients.join(", "),
                r.route
            )));
        }
    }
    let mut keys = route_partitions(&consumer, &matcher, r.timeout)?;
    if keys.is_empty() {
        return Err(MoveError::OutOfRange(format!(
            "route `{}` takes no existing topic",
            r.route
        )));
    }
    if let Some(p) = r.partition {
        keys.retain(|k| k.1 == p);
        if keys.is_empty() {
            return Err(MoveError::OutOfRange(format!(
                "the topics of route `{}` have no partition {p}",
                r.route
            )));
        }
    }
    let moves = plan(&consumer, &keys, r.target, r.timeout)?;
    if !r.dry_run {
        consumer
            .commit(&to_commit(&moves), CommitMode::Sync)
            .map_err(|e| {
                MoveError::Kafka(format!(
                    "committing the new offsets for group `{group}` failed (did a member join meanwhile?): {e}"
                ))
            })?;
    }
    Ok(moves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(Target::parse_offset("earliest"), Ok(Target::Earliest));
        assert_eq!(Target::parse_offset("latest"), Ok(Target::Latest));
        assert_eq!(Target::parse_offset("42"), Ok(Target::Offset(42)));
        assert!(Target::parse_offset("-1").is_err());
        assert!(Target::parse_offset("first").is_err());
        assert_eq!(
            Target::parse_time("1700000000000"),
            Ok(Target::Time(1_700_000_000_000))
        );
        assert_eq!(
            Target::parse_time("2023-11-14T22:13:20Z"),
            Ok(Target::Time(1_700_000_000_000))
        );
        assert_eq!(
            Target::parse_time("2023-11-14T23:13:20.5+01:00"),
            Ok(Target::Time(1_700_000_000_500))
        );
        assert_eq!(
            Target::parse_time("1970-01-01T00:00:00Z"),
            Ok(Target::Time(0))
        );
        assert_eq!(
            Target::parse_time("2024-02-29T12:00:00-00:30"),
            Ok(Target::Time(1_709_209_800_000))
        );
        for bad in [
            "yesterday",
            "2023-13-01T00:00:00Z",
            "2023-11-14 22:13",
            "2023-11-14T22:13:20",
        ] {
            assert!(Target::parse_time(bad).is_err(), "{bad}");
        }
    }
}
