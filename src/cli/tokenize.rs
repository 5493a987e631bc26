//! Splitting a typed command line into tokens, exactly as upstream's
//! `command_tokenize` does (PROTOCOL.md §5.5).
//!
//! * C `isspace` bytes (space, `\t`, `\n`, `\v`, `\f`, `\r`) separate tokens;
//!   runs collapse.
//! * A token that *starts* with `'` or `"` runs to the next identical quote;
//!   the quotes are dropped, everything between is kept literally (spaces,
//!   the other quote). No escapes. An unclosed quote runs to the end of the
//!   line. After a closing quote the next token starts at once
//!   (`'ab'cd` → `ab`, `cd`). A quote inside a token is an ordinary byte.
//! * At most [`TOKENS_MAX`] tokens are kept and each is cut to
//!   [`TOKEN_BYTES_MAX`] bytes (upstream's fixed 8 × 512-byte C buffers).
//! * The line ends at the first NUL byte, as a C string does.
//!
//! Every token is a sub-slice of the line (quotes are only ever at the ends),
//! so tokenizing borrows and copies nothing.

use crate::config_file::is_c_space;

/// Tokens kept per line; later ones are dropped, so an over-long line fails
/// the token-count checks of every command.
pub const TOKENS_MAX: usize = 8;

/// Bytes kept per token; the rest of a longer token is dropped.
pub const TOKEN_BYTES_MAX: usize = 511;

/// Splits `line` into at most [`TOKENS_MAX`] tokens borrowed from it.
pub fn tokenize(line: &[u8]) -> Vec<&[u8]> {
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut tokens = Vec::with_capacity(TOKENS_MAX);
    let mut at = 0;
    while tokens.len() < TOKENS_MAX {
        while line.get(at).copied().is_some_and(is_c_space) {
            at += 1;
        }
        let Some(&first) = line.get(at) else { break };
        let (start, end, next) = if first == b'\'' || first == b'"' {
            let start = at + 1;
            match line[start..].iter().position(|&b| b == first) {
                Some(offset) => (start, start + offset, start + offset + 1),
                None => (start, line.len(), line.len()),
            }
        } else {
            let end = line[at..].iter().position(|&b| is_c_space(b)).map_or(line.len(), |offset| at + offset);
            (at, end, end)
        };
        tokens.push(&line[start..end.min(start + TOKEN_BYTES_MAX)]);
        at = next;
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tokens(line: &str) -> Vec<&[u8]> {
        tokenize(line.as_bytes())
    }

    fn strs<'a>(tokens: &[&'a [u8]]) -> Vec<&'a str> {
        tokens.iter().map(|t| std::str::from_utf8(t).unwrap()).collect()
    }

    #[test]
    fn whitespace_of_every_kind_separates_and_collapses() {
        assert_eq!(strs(&tokens("  SET\tk \x0b\x0c v\r\n")), ["SET", "k", "v"]);
        assert!(tokens("").is_empty());
        assert!(tokens(" \t\r\n").is_empty());
    }

    #[test]
    fn quotes_group_spaces_and_keep_the_other_quote() {
        assert_eq!(strs(&tokens(r#"SET k "a b""#)), ["SET", "k", "a b"]);
        assert_eq!(strs(&tokens(r#"SET k 'say "hi"'"#)), ["SET", "k", r#"say "hi""#]);
        assert_eq!(strs(&tokens(r#"SET k "it's""#)), ["SET", "k", "it's"]);
        assert_eq!(strs(&tokens(r#"SET user '{"a": 1}'"#)), ["SET", "user", r#"{"a": 1}"#]);
    }

    #[test]
    fn empty_quotes_give_an_empty_token() {
        assert_eq!(strs(&tokens("SET '' \"\"")), ["SET", "", ""]);
    }

    #[test]
    fn unclosed_quote_runs_to_the_end_of_the_line() {
        assert_eq!(strs(&tokens("SET k 'a b  ")), ["SET", "k", "a b  "]);
        assert_eq!(strs(&tokens("PING \"")), ["PING", ""]);
    }

    #[test]
    fn next_token_starts_right_after_a_closing_quote() {
        assert_eq!(strs(&tokens("'ab'cd")), ["ab", "cd"]);
        assert_eq!(strs(&tokens("'a''b'")), ["a", "b"]);
    }

    #[test]
    fn a_quote_inside_a_token_is_ordinary() {
        assert_eq!(strs(&tokens("ab'cd ef\"g")), ["ab'cd", "ef\"g"]);
    }

    #[test]
    fn no_escape_sequences() {
        assert_eq!(strs(&tokens(r#""a\"b" c"#)), [r"a\", "b\"", "c"]);
    }

    #[test]
    fn at_most_eight_tokens_are_kept() {
        assert_eq!(strs(&tokens("1 2 3 4 5 6 7 8 9 10")), ["1", "2", "3", "4", "5", "6", "7", "8"]);
    }

    #[test]
    fn long_tokens_are_cut_to_511_bytes() {
        let long = "x".repeat(600);
        let line = format!("SET {long} '{long}' v");
        let got = tokens(&line);
        assert_eq!(got.len(), 4);
        assert_eq!(got[1].len(), TOKEN_BYTES_MAX);
        assert_eq!(got[2].len(), TOKEN_BYTES_MAX);
        assert_eq!(got[3], b"v", "the rest of a cut token is dropped, not re-split");
        assert_eq!(tokens(&"y".repeat(511))[0].len(), 511);
    }

    #[test]
    fn the_line_ends_at_a_nul_byte() {
        assert_eq!(tokenize(b"GET a\0b c"), [b"GET" as &[u8], b"a"]);
        assert!(tokenize(b"\0GET").is_empty());
    }

    #[test]
    fn non_utf8_bytes_pass_through() {
        assert_eq!(tokenize(b"SET k \xff\xfe"), [b"SET" as &[u8], b"k", b"\xff\xfe"]);
    }

    /// A token that survives a trip through quoting: no NUL, and short.
    fn plain_token() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>().prop_filter("no NUL", |&b| b != 0), 0..40)
    }

    proptest! {
        #[test]
        fn never_panics_and_respects_the_bounds(line in prop::collection::vec(any::<u8>(), 0..2000)) {
            let got = tokenize(&line);
            prop_assert!(got.len() <= TOKENS_MAX);
            prop_assert!(got.iter().all(|t| t.len() <= TOKEN_BYTES_MAX));
            for token in got {
                prop_assert!(!token.contains(&0));
            }
        }

        #[test]
        fn unquoted_words_round_trip(words in prop::collection::vec("[!#-&(-~]{1,20}", 0..12),
                                     gaps in prop::collection::vec("[ \t\x0b\x0c\r\n]{1,3}", 13)) {
            // Words without whitespace, quotes or NUL, joined by any whitespace.
            let mut line = gaps[12].clone();
            for (word, gap) in words.iter().zip(&gaps) {
                line.push_str(word);
                line.push_str(gap);
            }
            let expected: Vec<&[u8]> = words.iter().take(TOKENS_MAX).map(|w| w.as_bytes()).collect();
            prop_assert_eq!(tokenize(line.as_bytes()), expected);
        }

        #[test]
        fn quoting_round_trips_any_bytes_without_that_quote(raw in prop::collection::vec(plain_token(), 1..8)) {
            // Quote each token with a quote character it does not contain;
            // tokens holding both quote characters cannot be typed, skip them.
            let mut line = Vec::new();
            let mut expected = Vec::new();
            for token in &raw {
                let quote = if !token.contains(&b'"') { b'"' } else if !token.contains(&b'\'') { b'\'' } else { continue };
                line.push(quote);
                line.extend_from_slice(token);
                line.push(quote);
                expected.push(token.as_slice());
            }
            prop_assert_eq!(tokenize(&line), expected);
        }
    }
}
