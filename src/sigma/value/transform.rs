//! The string-shaping modifiers: `windash`, `base64`, `base64offset`, the UTF-16 encodings and
//! `expand`, applied left to right to one value, some of them making several variants.

use base64::Engine as _;

use super::{ItemError, Modifier, Part, Placeholders, SigmaString};

/// A value while modifiers transform it: text with wildcards, or bytes after a UTF-16 encoding
/// (which only `base64`/`base64offset` turn back into text).
enum Val {
    Text(SigmaString),
    Bytes(Vec<u8>),
}

/// Applies the string-shaping modifiers in order, expanding into several strings where a
/// modifier makes variants (`windash`, `base64offset`, `expand`).
pub(super) fn transform(
    start: SigmaString,
    mods: &[Modifier],
    placeholders: &Placeholders,
) -> Result<Vec<SigmaString>, ItemError> {
    let mut values = vec![Val::Text(start)];
    for m in mods {
        let mut next = Vec::new();
        for v in values {
            let text = |v: Val, what: &str| match v {
                Val::Text(t) => Ok(t),
                Val::Bytes(_) => Err(ItemError::Chain(format!(
                    "`{what}` cannot follow a UTF-16 encoding"
                ))),
            };
            match m {
                Modifier::Contains => next.push(Val::Text(text(v, "contains")?.wrap(true, true))),
                Modifier::StartsWith => {
                    next.push(Val::Text(text(v, "startswith")?.wrap(false, true)))
                }
                Modifier::EndsWith => next.push(Val::Text(text(v, "endswith")?.wrap(true, false))),
                Modifier::Windash => {
                    next.extend(windash(&text(v, "windash")?)?.into_iter().map(Val::Text))
                }
                Modifier::Expand => next.extend(
                    expand(&text(v, "expand")?, placeholders)?
                        .into_iter()
                        .map(Val::Text),
                ),
                Modifier::Base64 => {
                    let b = bytes(v, "base64")?;
                    next.push(Val::Text(SigmaString::literal(
                        &base64::engine::general_purpose::STANDARD.encode(b),
                    )));
                }
                Modifier::Base64Offset => {
                    let b = bytes(v, "base64offset")?;
                    next.extend(
                        base64_offsets(&b)
                            .into_iter()
                            .map(|s| Val::Text(SigmaString::literal(&s))),
                    );
                }
                Modifier::Utf16Le | Modifier::Utf16Be | Modifier::Utf16 => {
                    let b = bytes(v, "utf16")?;
                    let s = String::from_utf8(b)
                        .map_err(|_| ItemError::Chain("UTF-16 of non-text".into()))?;
                    let mut out = Vec::new();
                    if *m == Modifier::Utf16 {
                        out.extend_from_slice(&[0xFF, 0xFE]);
                    }
                    for u in s.encode_utf16() {
                        out.extend_from_slice(&if *m == Modifier::Utf16Be {
                            u.to_be_bytes()
                        } else {
                            u.to_le_bytes()
                        });
                    }
                    next.push(Val::Bytes(out));
                }
                _ => next.push(v),
            }
        }
        values = next;
        if values.len() > MAX_VARIANTS {
            return Err(ItemError::Value(format!(
                "modifiers expand to more than {MAX_VARIANTS} values"
            )));
        }
    }
    values
        .into_iter()
        .map(|v| match v {
            Val::Text(t) => Ok(t),
            Val::Bytes(b) => String::from_utf8(b).map(|s| SigmaString::literal(&s)).map_err(|_| {
                ItemError::Chain("a UTF-16 encoding that is not valid text must be followed by `base64` or `base64offset`".into())
            }),
        })
        .collect()
}

/// Bound on the variants one value may expand into (`windash` grows as 5^dashes).
const MAX_VARIANTS: usize = 4096;

fn bytes(v: Val, what: &str) -> Result<Vec<u8>, ItemError> {
    match v {
        Val::Bytes(b) => Ok(b),
        Val::Text(t) => t.plain().map(String::into_bytes).ok_or_else(|| {
            ItemError::Chain(format!("`{what}` cannot encode a value with wildcards"))
        }),
    }
}

/// The three base64 spellings of `value` at the three offsets it can have inside a longer
/// encoded string, with the characters that depend on unknown neighbours cut off.
pub fn base64_offsets(value: &[u8]) -> Vec<String> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let start = [0usize, 2, 3];
    let end = [0usize, 3, 2];
    (0..3)
        .map(|i| {
            let mut padded = vec![b' '; i];
            padded.extend_from_slice(value);
            let enc = engine.encode(&padded);
            let cut_end = end[(value.len() + i) % 3];
            let stop = enc.len().saturating_sub(cut_end);
            enc.get(start[i]..stop).unwrap_or("").to_string()
        })
        .collect()
}

fn windash(v: &SigmaString) -> Result<Vec<SigmaString>, ItemError> {
    const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];
    // A dash or slash that starts a word (after a non-word character or at the start) is an
    // option prefix; each such one gets every dash variant.
    let mut out = vec![Vec::<Part>::new()];
    let mut prev_word = false;
    for p in &v.0 {
        match p {
            Part::Lit(s) => {
                let chars: Vec<char> = s.chars().collect();
                let mut current = String::new();
                for (i, &c) in chars.iter().enumerate() {
                    let next_word = chars
                        .get(i + 1)
                        .is_some_and(|n| n.is_alphanumeric() || *n == '_');
                    if (c == '-' || c == '/') && !prev_word && next_word {
                        let mut grown = Vec::with_capacity(out.len() * DASHES.len());
                        for prefix in &out {
                            for d in DASHES {
                                let mut p2 = prefix.clone();
                                push_lit(&mut p2, &current);
                                push_lit(&mut p2, &d.to_string());
                                grown.push(p2);
                            }
                        }
                        if grown.len() > MAX_VARIANTS {
                            return Err(ItemError::Value(
                                "`windash` expands to too many values".into(),
                            ));
                        }
                        out = grown;
                        current.clear();
                    } else {
                        current.push(c);
                    }
                    prev_word = c.is_alphanumeric() || c == '_';
                }
                for o in &mut out {
                    push_lit(o, &current);
                }
            }
            other => {
                for o in &mut out {
                    o.push(other.clone());
                }
                prev_word = false;
            }
        }
    }
    Ok(out.into_iter().map(SigmaString).collect())
}

fn push_lit(parts: &mut Vec<Part>, s: &str) {
    if s.is_empty() {
        return;
    }
    if let Some(Part::Lit(last)) = parts.last_mut() {
        last.push_str(s);
    } else {
        parts.push(Part::Lit(s.to_string()));
    }
}

/// Replaces `%name%` placeholders (word characters between percent signs) with every value
/// the pipeline gives them; `\%` is a plain percent sign (specification, Placeholders).
fn expand(v: &SigmaString, placeholders: &Placeholders) -> Result<Vec<SigmaString>, ItemError> {
    let mut out = vec![Vec::<Part>::new()];
    for p in &v.0 {
        let Part::Lit(s) = p else {
            for o in &mut out {
                o.push(p.clone());
            }
            continue;
        };
        let mut plain = String::new();
        let mut rest = s.as_str();
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("\\%") {
                plain.push('%');
                rest = after;
                continue;
            }
            if c == '%'
                && let Some(len) = rest[1..].find('%')
                && len > 0
                && rest[1..1 + len]
                    .chars()
                    .all(|ch| ch.is_alphanumeric() || ch == '_')
            {
                let name = &rest[1..1 + len];
                let values = placeholders
                    .get(name)
                    .or_else(|| placeholders.get(super::ANY_PLACEHOLDER))
                    .ok_or_else(|| {
                    ItemError::Unsupported(format!(
                        "`expand` placeholder `%{name}%` has no value (define it in a processing pipeline)"
                    ))
                })?;
                if values.is_empty() {
                    return Err(ItemError::Value(format!(
                        "`expand` placeholder `%{name}%` has an empty list of values"
                    )));
                }
                let mut grown = Vec::with_capacity(out.len() * values.len());
                for o in &out {
                    for val in values {
                        let mut p2 = o.clone();
                        push_lit(&mut p2, &plain);
                        p2.extend(SigmaString::parse(val).0);
                        grown.push(p2);
                    }
                }
                if grown.len() > MAX_VARIANTS {
                    return Err(ItemError::Value("`expand` makes too many values".into()));
                }
                out = grown;
                plain.clear();
                rest = &rest[len + 2..];
                continue;
            }
            plain.push(c);
            rest = &rest[c.len_utf8()..];
        }
        for o in &mut out {
            push_lit(o, &plain);
        }
    }
    Ok(out.into_iter().map(SigmaString).collect())
}
