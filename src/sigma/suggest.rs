//! "Did you mean": the closest known name to a misspelt one, for load errors.

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo: at
/// most one edit for names up to four characters, two up to eight, three beyond. Ties go to
/// the alphabetically first, so the answer never depends on the candidates' order.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = match word.chars().count() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase());
        if d <= limit && best.is_none_or(|(b, bc)| d < b || (d == b && c < bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `; did you mean `x`?` for the closest candidate, or an empty string: a message suffix.
pub fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// Levenshtein distance over characters, one row of memory.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_name_and_strangers_find_none() {
        let mods = ["contains", "startswith", "endswith", "windash", "all"];
        assert_eq!(closest("contians", mods), Some("contains"));
        assert_eq!(closest("endwith", mods), Some("endswith"));
        assert_eq!(closest("Contains", mods), Some("contains"));
        assert_eq!(closest("base64", mods), None);
        assert_eq!(hint("al", mods), "; did you mean `all`?");
        assert_eq!(hint("zzz", mods), "");
    }
}
