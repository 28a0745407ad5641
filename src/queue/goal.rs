//! One goal of the timeline, as the original's producers sent it (`GameResults`) and its
//! consumers showed it (`12 mins - Messi (FCB) - Score: 1-0`). Pure.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest `Player`, `Club` or `Score`, in bytes.
pub const MAX_FIELD_BYTES: usize = 64;
/// Largest `Minute` accepted (90 plus extra time, with room to spare).
pub const MAX_MINUTE: u64 = 200;

/// A goal: the original's `GameResults` object, field names and all.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Goal {
    /// The match minute.
    #[serde(rename = "Minute")]
    pub minute: u32,
    /// Who scored.
    #[serde(rename = "Player")]
    pub player: String,
    /// The scorer's club.
    #[serde(rename = "Club")]
    pub club: String,
    /// The score after the goal, `"a-b"`.
    #[serde(rename = "Score")]
    pub score: String,
}

impl Goal {
    /// Reads and checks a `GameResults` object: `Minute` a whole number from 0 to
    /// [`MAX_MINUTE`], `Player` and `Club` non-empty text of at most [`MAX_FIELD_BYTES`]
    /// bytes without control characters, `Score` two whole numbers joined by `-`. Unknown
    /// fields are ignored. The error names the field and what was wrong with it.
    pub fn from_json(v: &Value) -> Result<Goal, String> {
        let obj = v
            .as_object()
            .ok_or("\"gameResults\" must be a JSON object")?;
        let minute = match obj.get("Minute") {
            None => return Err("gameResults.Minute is required".into()),
            Some(m) => match m.as_u64() {
                Some(n) if n <= MAX_MINUTE => n as u32,
                _ => {
                    return Err(format!(
                        "gameResults.Minute must be a whole number from 0 to {MAX_MINUTE}, not {m}"
                    ))
                }
            },
        };
        let text = |name: &str| -> Result<String, String> {
            match obj.get(name) {
                None => Err(format!("gameResults.{name} is required")),
                Some(Value::String(s)) => {
                    if s.is_empty() {
                        Err(format!("gameResults.{name} must not be empty"))
                    } else if s.len() > MAX_FIELD_BYTES {
                        Err(format!(
                            "gameResults.{name} is {} bytes; the limit is {MAX_FIELD_BYTES}",
                            s.len()
                        ))
                    } else if s.chars().any(char::is_control) {
                        Err(format!("gameResults.{name} contains a control character"))
                    } else {
                        Ok(s.clone())
                    }
                }
                Some(other) => Err(format!("gameResults.{name} must be a string, not {other}")),
            }
        };
        let player = text("Player")?;
        let club = text("Club")?;
        let score = text("Score")?;
        let valid_score = score
            .split_once('-')
            .is_some_and(|(a, b)| is_count(a) && is_count(b));
        if !valid_score {
            return Err(format!(
                "gameResults.Score must look like \"1-0\" (two whole numbers), not {score:?}"
            ));
        }
        Ok(Goal {
            minute,
            player,
            club,
            score,
        })
    }

    /// The timeline's line for this goal: `12 mins - Messi (FCB) - Score: 1-0`.
    pub fn line(&self) -> String {
        format!(
            "{} mins - {} ({}) - Score: {}",
            self.minute, self.player, self.club, self.score
        )
    }
}

fn is_count(s: &str) -> bool {
    !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A goal with its place in ZooWeeper's total order of goals: `offset` is the goal's
/// event number, the same on every broker that holds it, so a poller can move between
/// brokers (a broker's offsets have holes where goals were not addressed to it).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// The goal's event number in ZooWeeper (from 0).
    #[serde(rename = "Offset")]
    pub offset: u64,
    /// The goal.
    #[serde(flatten)]
    pub goal: Goal,
}

/// `GET /data?from=N` on a broker: the goals with offsets from `N` on, in order, and the
/// offset to ask from next time.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DataPage {
    /// The broker that answered (its id, the port in the original).
    pub broker: String,
    /// The goals, in order.
    pub events: Vec<Entry>,
    /// Pass this as the next `from`: past every goal returned and every event number the
    /// broker has already seen (also those not addressed to it).
    pub next: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_goal_reads_and_prints_as_the_original() {
        let g = Goal::from_json(
            &json!({"Minute": 12, "Player": "Messi", "Club": "FCB", "Score": "1-0", "x": 1}),
        )
        .unwrap();
        assert_eq!(g.line(), "12 mins - Messi (FCB) - Score: 1-0");
        let back = serde_json::to_value(&g).unwrap();
        assert_eq!(
            back,
            json!({"Minute": 12, "Player": "Messi", "Club": "FCB", "Score": "1-0"})
        );
    }

    #[test]
    fn bad_goals_say_which_field_is_wrong() {
        let cases = [
            (json!([1]), "JSON object"),
            (
                json!({"Player": "a", "Club": "b", "Score": "1-0"}),
                "Minute is required",
            ),
            (
                json!({"Minute": "12", "Player": "a", "Club": "b", "Score": "1-0"}),
                "Minute",
            ),
            (
                json!({"Minute": -1, "Player": "a", "Club": "b", "Score": "1-0"}),
                "Minute",
            ),
            (
                json!({"Minute": 1.5, "Player": "a", "Club": "b", "Score": "1-0"}),
                "Minute",
            ),
            (
                json!({"Minute": 1, "Player": 7, "Club": "b", "Score": "1-0"}),
                "Player must be a string",
            ),
            (
                json!({"Minute": 1, "Player": "", "Club": "b", "Score": "1-0"}),
                "Player must not be empty",
            ),
            (
                json!({"Minute": 1, "Player": "a", "Score": "1-0"}),
                "Club is required",
            ),
            (
                json!({"Minute": 1, "Player": "a", "Club": "b\n", "Score": "1-0"}),
                "control",
            ),
            (
                json!({"Minute": 1, "Player": "a", "Club": "b", "Score": "one-nil"}),
                "Score",
            ),
            (
                json!({"Minute": 1, "Player": "a".repeat(65), "Club": "b", "Score": "1-0"}),
                "limit",
            ),
        ];
        for (v, want) in cases {
            let e = Goal::from_json(&v).unwrap_err();
            assert!(e.contains(want), "{v}: {e}");
        }
    }

    #[test]
    fn an_entry_is_a_goal_with_its_offset() {
        let e = Entry {
            offset: 7,
            goal: Goal {
                minute: 1,
                player: "Pele".into(),
                club: "MU".into(),
                score: "0-0".into(),
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({"Offset": 7, "Minute": 1, "Player": "Pele", "Club": "MU", "Score": "0-0"})
        );
        assert_eq!(serde_json::from_value::<Entry>(v).unwrap(), e);
    }
}
