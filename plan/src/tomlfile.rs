//! One-line messages for errors in the TOML files dicesim reads with serde (scenario,
//! platform, device template, calibration, mapping).
//!
//! Every table of those files is read with `#[serde(deny_unknown_fields)]`, so a misspelled
//! key is an error rather than a silently ignored line. serde reports it as "unknown field
//! `x`, expected one of ..."; [`explain`] turns that into the table that holds the key and
//! the closest valid key: `[workload]: unknown key `frame` (did you mean `frames`?)`. Every
//! other error (syntax, a value of the wrong type) stays `line L, column C: message`.

use std::fmt;

use toml::de::{DeTable, DeValue};

/// A key that no table of the file format has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// The table that holds it: `[workload]`, `[device[0].unit[1]]`, or `top level`.
    pub table: String,
    /// The key as written.
    pub key: String,
    /// `did you mean `k`?`, or the valid keys when none is close.
    pub hint: String,
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: unknown key `{}` ({})",
            self.table, self.key, self.hint
        )
    }
}

/// What went wrong in a TOML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TomlProblem {
    /// A misspelled or misplaced key.
    UnknownKey(UnknownKey),
    /// Anything else, as `line L, column C: message`.
    Other(String),
}

/// Explains a parse or deserialisation error of `text` in one line.
pub fn explain(text: &str, e: &toml::de::Error) -> TomlProblem {
    let msg = e.message().trim().replace('\n', " ");
    if let (Some((key, valid)), Some(span)) = (unknown_field(&msg), e.span()) {
        if let Some(table) = table_of_key(text, span.start) {
            return TomlProblem::UnknownKey(UnknownKey {
                hint: hint(&key, &valid),
                table,
                key,
            });
        }
    }
    TomlProblem::Other(with_suggestion(
        crate::error::toml_error_line(text, e),
        &msg,
    ))
}

/// The valid name closest to `word`, if one is close enough to be a likely misspelling.
pub fn closest<'a>(word: &str, valid: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // A third of the word's length (at least 1) covers a dropped, doubled, swapped or
    // wrong letter or two without offering unrelated names.
    let limit = (word.chars().count() / 3).max(1);
    valid
        .into_iter()
        .map(|v| (strsim::damerau_levenshtein(word, v), v))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, v)| v)
}

/// `did you mean `k`?` for the closest of `valid`, else the list of valid names.
pub fn hint(word: &str, valid: &[String]) -> String {
    match closest(word, valid.iter().map(String::as_str)) {
        Some(v) => format!("did you mean `{v}`?"),
        None if valid.is_empty() => "this table takes no keys".into(),
        None => format!(
            "expected one of {}",
            valid
                .iter()
                .map(|v| format!("`{v}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The key and the valid keys of serde's "unknown field `k`, expected one of `a`, `b`".
fn unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    Some((key.to_string(), backticked(rest)))
}

/// Every `quoted` word of `s`.
fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// serde's "unknown variant `x`, expected one of ..." gains `(did you mean `y`?)`.
fn with_suggestion(line: String, msg: &str) -> String {
    let Some(rest) = msg.strip_prefix("unknown variant `") else {
        return line;
    };
    let Some((word, rest)) = rest.split_once('`') else {
        return line;
    };
    let valid = backticked(rest);
    match closest(word, valid.iter().map(String::as_str)) {
        Some(v) => format!("{line} (did you mean `{v}`?)"),
        None => line,
    }
}

/// One step of a path into a TOML document.
enum Step {
    Key(String),
    Index(usize),
}

/// The table holding the key that starts at byte `at`, as `[a.b[1].c]`, or `top level`.
fn table_of_key(text: &str, at: usize) -> Option<String> {
    let doc = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    if !find_in_table(doc.get_ref(), at, &mut path) {
        return None;
    }
    if path.is_empty() {
        return Some("top level".into());
    }
    let mut s = String::from("[");
    for step in &path {
        match step {
            Step::Key(k) if s.len() > 1 => s += &format!(".{}", bare(k)),
            Step::Key(k) => s += &bare(k),
            Step::Index(i) => s += &format!("[{i}]"),
        }
    }
    Some(s + "]")
}

/// A key as written in a dotted path: quoted unless it is a bare TOML key.
fn bare(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        toml::Value::String(k.to_string()).to_string()
    }
}

/// Whether `table` (or a table inside it) holds the key at `at`; `path` leads there.
fn find_in_table(table: &DeTable<'_>, at: usize, path: &mut Vec<Step>) -> bool {
    for (k, v) in table.iter() {
        if k.span().start == at {
            return true;
        }
        path.push(Step::Key(k.get_ref().to_string()));
        if find_in_value(v.get_ref(), at, path) {
            return true;
        }
        path.pop();
    }
    false
}

fn find_in_value(v: &DeValue<'_>, at: usize, path: &mut Vec<Step>) -> bool {
    match v {
        DeValue::Table(t) => find_in_table(t, at, path),
        DeValue::Array(a) => a.iter().enumerate().any(|(i, item)| {
            path.push(Step::Index(i));
            let found = find_in_value(item.get_ref(), at, path);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        workload: Option<Work>,
        device: Option<Vec<Dev>>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Work {
        frames: Option<u32>,
        period_ms: Option<f64>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Dev {
        name: Option<String>,
        unit: Option<Vec<Work>>,
    }

    fn problem(text: &str) -> TomlProblem {
        let e = toml::from_str::<Doc>(text).unwrap_err();
        explain(text, &e)
    }

    fn unknown(table: &str, key: &str, hint: &str) -> TomlProblem {
        TomlProblem::UnknownKey(UnknownKey {
            table: table.into(),
            key: key.into(),
            hint: hint.into(),
        })
    }

    #[test]
    fn unknown_keys_name_their_table_and_the_closest_key() {
        assert_eq!(
            problem("[workload]\nframe = 100\n"),
            unknown("[workload]", "frame", "did you mean `frames`?")
        );
        assert_eq!(
            problem("[workload]\nxyz = 1\n"),
            unknown("[workload]", "xyz", "expected one of `frames`, `period_ms`")
        );
        assert_eq!(
            problem("[workloads]\nframes = 1\n"),
            unknown("top level", "workloads", "did you mean `workload`?")
        );
        assert_eq!(
            problem("[[device]]\nname = \"a\"\n[[device]]\n[[device.unit]]\nframs = 1\n"),
            unknown("[device[1].unit[0]]", "frams", "did you mean `frames`?")
        );
        assert_eq!(
            problem("workload = { frames = 1, perod_ms = 2 }\n"),
            unknown("[workload]", "perod_ms", "did you mean `period_ms`?")
        );
    }

    #[test]
    fn other_errors_keep_line_and_column() {
        assert_eq!(
            problem("[workload]\nframes = \"many\"\n"),
            TomlProblem::Other(
                "line 2, column 10: invalid type: string \"many\", expected u32".into()
            )
        );
        match problem("[workload\n") {
            TomlProblem::Other(m) => assert!(m.starts_with("line 1, column 10"), "{m}"),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn closest_is_none_for_unrelated_words() {
        assert_eq!(
            closest("latency_usec", ["latency_us", "name"]),
            Some("latency_us")
        );
        assert_eq!(closest("hill", ["hil", "model"]), Some("hil"));
        assert_eq!(closest("colour", ["name", "ends"]), None);
    }
}
