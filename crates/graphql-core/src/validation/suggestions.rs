//! "Did you mean ...?" hints for unknown names, chosen and worded as graphql-js chooses them
//! so that messages match: candidates within an edit distance of 40% of the name's length
//! (plus one; transpositions count once; a change of case only counts one), closest first,
//! then in natural order (digit runs compared as numbers), at most five.
//!
//! ```text
//! "nam" among [name, nickname]  ->  ` Did you mean "name"?`
//! ```

use std::cmp::Ordering;

/// The candidates close enough to `input`, best first.
pub(crate) fn suggestion_list<'o>(
    input: &str,
    options: impl IntoIterator<Item = &'o str>,
) -> Vec<&'o str> {
    let threshold = input.chars().count() * 4 / 10 + 1;
    let lower = input.to_lowercase();
    let mut found: Vec<(usize, &str)> = options
        .into_iter()
        .filter_map(|o| distance(&lower, input, o, threshold).map(|d| (d, o)))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| natural_compare(a.1, b.1)));
    found.into_iter().map(|(_, o)| o).collect()
}

/// ` Did you mean "a", "b", or "c"?` (empty without suggestions); `what` is put before the
/// names ("to use an inline fragment on", "the enum value").
pub(crate) fn did_you_mean(what: Option<&str>, suggestions: &[&str]) -> String {
    let mut out = String::new();
    let Some((last, first)) = suggestions
        .get(..suggestions.len().min(5))
        .and_then(<[_]>::split_last)
    else {
        return out;
    };
    out.push_str(" Did you mean ");
    if let Some(what) = what {
        out.push_str(what);
        out.push(' ');
    }
    match first.len() {
        0 => {}
        1 => out.push_str(&format!("\"{}\" or ", first.first().copied().unwrap_or(""))),
        _ => {
            for s in first {
                out.push_str(&format!("\"{s}\", "));
            }
            out.push_str("or ");
        }
    }
    out.push_str(&format!("\"{last}\"?"));
    out
}

/// Optimal string alignment distance between `input` (lowercased as `lower`) and `option`,
/// `None` past `threshold`.
fn distance(lower: &str, input: &str, option: &str, threshold: usize) -> Option<usize> {
    if input == option {
        return Some(0);
    }
    let option_lower = option.to_lowercase();
    if *lower == option_lower {
        return Some(1);
    }
    let mut a: Vec<char> = lower.chars().collect();
    let mut b: Vec<char> = option_lower.chars().collect();
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    if a.len() - b.len() > threshold {
        return None;
    }
    // Three rolling rows: two back (for transpositions), previous, current.
    let at = |row: &[usize], k: usize| row.get(k).copied().unwrap_or(usize::MAX);
    let mut two_back: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        let mut row_min = i;
        if let Some(first) = cur.first_mut() {
            *first = i;
        }
        for j in 1..=b.len() {
            let cost = usize::from(a.get(i - 1) != b.get(j - 1));
            let mut d = at(&prev, j)
                .saturating_add(1)
                .min(at(&cur, j - 1).saturating_add(1))
                .min(at(&prev, j - 1).saturating_add(cost));
            if i > 1 && j > 1 && a.get(i - 1) == b.get(j - 2) && a.get(i - 2) == b.get(j - 1) {
                d = d.min(at(&two_back, j - 2).saturating_add(1));
            }
            row_min = row_min.min(d);
            if let Some(slot) = cur.get_mut(j) {
                *slot = d;
            }
        }
        if row_min > threshold {
            return None;
        }
        // Rotate: current becomes previous, previous becomes two back.
        std::mem::swap(&mut two_back, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = at(&prev, b.len());
    (d <= threshold).then_some(d)
}

/// Orders names with digit runs compared by value (`a2` before `a10`).
pub(crate) fn natural_compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        if x.is_ascii_digit() && y.is_ascii_digit() {
            let run = |s: &[u8], mut k: usize| {
                let start = k;
                while s.get(k).is_some_and(u8::is_ascii_digit) {
                    k += 1;
                }
                (start, k)
            };
            let ((sa, ea), (sb, eb)) = (run(a, i), run(b, j));
            let na = std::str::from_utf8(a.get(sa..ea).unwrap_or_default()).unwrap_or("0");
            let nb = std::str::from_utf8(b.get(sb..eb).unwrap_or_default()).unwrap_or("0");
            let (na, nb) = (na.trim_start_matches('0'), nb.trim_start_matches('0'));
            let by_value = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if by_value != Ordering::Equal {
                return by_value;
            }
            i = ea;
            j = eb;
        } else {
            if x != y {
                return x.cmp(&y);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_come_first_and_far_ones_not_at_all() {
        assert_eq!(
            suggestion_list("nam", ["nickname", "name", "barks"]),
            ["name"]
        );
        assert_eq!(suggestion_list("sit", ["SIT", "HEEL", "DOWN"]), ["SIT"]);
        assert_eq!(suggestion_list("ab", ["ba", "abc", "xyz"]), ["abc", "ba"]);
        assert!(suggestion_list("x", ["yyyyyy"]).is_empty());
    }

    #[test]
    fn hints_are_worded_like_graphql_js() {
        assert_eq!(did_you_mean(None, &[]), "");
        assert_eq!(did_you_mean(None, &["a"]), " Did you mean \"a\"?");
        assert_eq!(
            did_you_mean(None, &["a", "b"]),
            " Did you mean \"a\" or \"b\"?"
        );
        assert_eq!(
            did_you_mean(Some("the enum value"), &["a", "b", "c", "d", "e", "f"]),
            " Did you mean the enum value \"a\", \"b\", \"c\", \"d\", or \"e\"?"
        );
    }

    #[test]
    fn digits_compare_by_value() {
        assert_eq!(natural_compare("a2", "a10"), Ordering::Less);
        assert_eq!(natural_compare("b", "a"), Ordering::Greater);
        assert_eq!(natural_compare("a", "ab"), Ordering::Less);
    }
}
