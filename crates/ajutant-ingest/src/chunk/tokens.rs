//! Token counting without a vocabulary: the sizes the embedding model's tokenizer would give,
//! closely enough to cut passages by.

/// About how many tokens a BERT-style tokenizer (the WordPiece vocabulary of
/// all-MiniLM-L6-v2, or a BPE one) makes of `text`.
///
/// It follows BERT's pre-tokenizer: every punctuation or symbol character is a token, every
/// CJK ideograph is a token, and each run of letters and digits between them is one token,
/// plus one more per 8 characters past the first (a long or rare word splits into
/// sub-words). Digits weigh double (long numbers split into short pieces) and letters
/// outside Latin weigh triple (an English-centred vocabulary splits them finely); accents
/// and invisible format characters add nothing, since the tokenizer strips them.
///
/// That is an approximation: a common long word ("international") is one WordPiece but counts
/// two here, a rare short one may count one and be three. It is adequate because the count
/// only sizes passages so they fit the model's window with room to spare; nothing is billed
/// by it. It needs no vocabulary, so chunking does not depend on the model being loaded, and
/// it is fast: one pass over the characters, no allocation.
///
/// It is additive across whitespace (`count("a b") == count("a") + count("b")`) and never
/// grows when text is split (`count(a + b) <= count(a) + count(b)`), which the chunker relies
/// on to keep its bound.
pub fn count_tokens(text: &str) -> usize {
    let mut counter = TokenCounter::default();
    for c in text.chars() {
        counter.push(c);
    }
    counter.total()
}

/// Characters of weight 1 that one sub-word token covers, past the first.
const CHARS_PER_PIECE: usize = 8;

/// [`count_tokens`] one character at a time, so a long word can be cut where a budget runs
/// out without counting it again from the start.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokenCounter {
    /// Tokens of everything before the current run.
    closed: usize,
    /// Weighted length of the current run of letters and digits.
    run: usize,
}

impl TokenCounter {
    #[inline]
    pub(crate) fn push(&mut self, c: char) {
        if c.is_ascii() {
            if c.is_ascii_alphabetic() {
                self.run += 1;
            } else if c.is_ascii_digit() {
                self.run += 2;
            } else if c.is_ascii_whitespace() || c.is_ascii_control() {
                self.end_run();
            } else {
                self.end_run();
                self.closed += 1;
            }
            return;
        }
        match class(c) {
            Class::Letter(weight) => self.run += weight,
            Class::Invisible => {}
            Class::Space => self.end_run(),
            Class::Own => {
                self.end_run();
                self.closed += 1;
            }
        }
    }

    #[inline]
    fn end_run(&mut self) {
        self.closed += run_tokens(self.run);
        self.run = 0;
    }

    pub(crate) fn total(&self) -> usize {
        self.closed + run_tokens(self.run)
    }
}

#[inline]
fn run_tokens(weight: usize) -> usize {
    if weight == 0 {
        0
    } else {
        1 + (weight - 1) / CHARS_PER_PIECE
    }
}

enum Class {
    /// Part of a word, with its weight.
    Letter(usize),
    /// Stripped by the tokenizer: combining accents, zero-width and format characters.
    Invisible,
    Space,
    /// A token of its own: punctuation, symbols, emoji, CJK ideographs and kana.
    Own,
}

fn class(c: char) -> Class {
    match c {
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FE20}'..='\u{FE2F}'
        | '\u{00AD}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2060}'..='\u{206F}'
        | '\u{FEFF}' => Class::Invisible,
        '\u{3040}'..='\u{30FF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FA1F}' => Class::Own,
        // Accented Latin: the uncased tokenizer strips the accent and sees plain letters.
        '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}' if c.is_alphabetic() => Class::Letter(1),
        c if c.is_whitespace() => Class::Space,
        c if c.is_numeric() => Class::Letter(2),
        c if c.is_alphabetic() => Class::Letter(3),
        c if c.is_control() => Class::Space,
        _ => Class::Own,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_bert_pre_tokenizer() {
        let cases = [
            ("", 0),
            ("   \n\t", 0),
            ("hello world", 2),
            ("Hello, world!", 4),
            ("don't", 3),
            ("e-mail: a@b.com", 9),
            ("100,000", 3),
            ("2024", 1),
            ("1234567890", 3),
            ("internationalisation", 3),
            ("café crème", 2),
            ("cafe\u{301}", 1),
            ("日本語です", 5),
            ("Привет мир", 5),
            ("zero\u{200B}width", 2),
            ("🙂🙂", 2),
        ];
        for (text, expected) in cases {
            assert_eq!(count_tokens(text), expected, "{text:?}");
        }
    }

    #[test]
    fn counting_is_additive_over_whitespace_and_subadditive_over_cuts() {
        let text = "The quick brown fox, jumping over 12345 lazy dogs; supercalifragilistic! 日本";
        let words: usize = text.split_whitespace().map(count_tokens).sum();
        assert_eq!(count_tokens(text), words);
        for (cut, _) in text.char_indices() {
            let (a, b) = text.split_at(cut);
            assert!(
                count_tokens(text) <= count_tokens(a) + count_tokens(b),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_long_run_grows_by_one_token_per_eight_letters() {
        assert_eq!(count_tokens(&"a".repeat(8)), 1);
        assert_eq!(count_tokens(&"a".repeat(9)), 2);
        assert_eq!(count_tokens(&"a".repeat(80)), 10);
    }
}
