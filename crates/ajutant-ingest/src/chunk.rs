//! Cutting extracted text into passages for search and embedding.
//!
//! Chunks follow the document's structure: a chunk never spans two sections, and carries its
//! section's heading path, which is also indexed with it (see [`Chunk::indexed_text`]) so a
//! passage is found by the words of its headings. Within a section, cuts fall between
//! paragraphs where that leaves the chunk at least half full, otherwise between sentences (or
//! lines), and inside a sentence only when one sentence alone is over budget. Consecutive
//! chunks of a section overlap by about `overlap_tokens`, in whole sentences where possible,
//! so an answer that straddles a cut is still whole in one chunk.
//!
//! The bound: a chunk's `tokens` (heading line plus text, by [`count_tokens`]) is at most
//! `max_tokens`, unless the heading line alone is over half of `max_tokens`; then the text
//! still gets half the budget, rounded up: `tokens <= heading tokens + ceil(max_tokens / 2)`.

mod tokens;

use crate::extract::{Extracted, Section};

use tokens::TokenCounter;
pub use tokens::count_tokens;

#[derive(Debug, Clone)]
pub struct ChunkSettings {
    /// Upper bound on a chunk's tokens, heading line included (see the module docs for the one
    /// exception). Default 200, leaving room under all-MiniLM-L6-v2's 256-token window for
    /// the counting error. Values below 1 count as 1.
    pub max_tokens: usize,
    /// About how many tokens consecutive chunks of a section share. Default 40; at most half
    /// of the text budget is used.
    pub overlap_tokens: usize,
}

impl Default for ChunkSettings {
    fn default() -> Self {
        Self {
            max_tokens: 200,
            overlap_tokens: 40,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Chunk {
    /// 0-based, in document order.
    pub ordinal: u32,
    /// The passage, without the heading prefix.
    pub text: String,
    /// The section's heading path, outermost first.
    pub headings: Vec<String>,
    /// 1-based PDF page.
    pub page: Option<u32>,
    /// Token count of `heading line + text`, i.e. of [`Chunk::indexed_text`].
    pub tokens: u32,
}

impl Chunk {
    /// The text indexed and embedded: the heading path ("Leave > Parental leave") on its own
    /// line, then the passage, so a passage is found by its heading words too.
    pub fn indexed_text(&self) -> String {
        if self.headings.is_empty() {
            return self.text.clone();
        }
        format!("{}\n{}", heading_line(&self.headings), self.text)
    }

    /// Where the passage is, for a citation: "page 3" or "Leave > Parental leave".
    pub fn location(&self) -> Option<String> {
        match (self.page, self.headings.is_empty()) {
            (Some(page), _) => Some(format!("page {page}")),
            (None, false) => Some(heading_line(&self.headings)),
            (None, true) => None,
        }
    }
}

fn heading_line(headings: &[String]) -> String {
    headings.join(" > ")
}

/// Cuts every non-blank section of `document` into chunks, numbered in document order.
pub fn chunk(document: &Extracted, settings: &ChunkSettings) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    for section in &document.sections {
        chunk_section(section, settings, &mut chunks);
    }
    chunks
}

fn chunk_section(section: &Section, settings: &ChunkSettings, out: &mut Vec<Chunk>) {
    if section.text.trim().is_empty() {
        return;
    }
    let max_tokens = settings.max_tokens.max(1);
    let heading_tokens = count_tokens(&heading_line(&section.headings));
    let budget = max_tokens
        .saturating_sub(heading_tokens)
        .max(max_tokens.div_ceil(2));
    let overlap = settings.overlap_tokens.min(budget / 2);
    // Pieces of a sentence cut by words are overlap-sized, so the overlap can still be made of
    // whole pieces.
    let granule = if overlap > 0 { overlap } else { budget / 2 }.max(1);
    let units = units(&section.text, budget, granule);
    for (first, last) in pack(&units, budget, overlap) {
        let (Some(first), Some(last)) = (units.get(first), units.get(last)) else {
            continue;
        };
        let text = section.text[first.start..last.end].trim();
        let tokens = heading_tokens + count_tokens(text);
        out.push(Chunk {
            ordinal: u32::try_from(out.len()).unwrap_or(u32::MAX),
            text: text.to_owned(),
            headings: section.headings.clone(),
            page: section.page,
            tokens: u32::try_from(tokens).unwrap_or(u32::MAX),
        });
    }
}

/// The smallest spans a chunk is built from: a sentence or line, or a run of words of a
/// sentence too long for one chunk. Byte offsets into the section text.
#[derive(Debug, Clone, PartialEq)]
struct Unit {
    start: usize,
    end: usize,
    tokens: usize,
    /// First unit of a paragraph: the preferred place to cut.
    paragraph_start: bool,
}

fn units(text: &str, budget: usize, granule: usize) -> Vec<Unit> {
    let mut units = Vec::new();
    let mut paragraph_start = true;
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let offset = line_start;
        line_start += line.len();
        if line.trim().is_empty() {
            paragraph_start = true;
            continue;
        }
        for (start, end) in sentences(line) {
            let (start, end) = (offset + start, offset + end);
            let tokens = count_tokens(&text[start..end]);
            if tokens <= budget {
                units.push(Unit {
                    start,
                    end,
                    tokens,
                    paragraph_start,
                });
            } else {
                let before = units.len();
                split_words(text, start, end, granule, &mut units);
                if let Some(first) = units.get_mut(before) {
                    first.paragraph_start = paragraph_start;
                }
            }
            paragraph_start = false;
        }
    }
    units
}

/// Sentence spans of one line, trimmed: a sentence ends after `.`, `!`, `?` or `…` (and any
/// closing quotes or brackets) followed by whitespace, or after a CJK full stop.
/// Abbreviations ("e.g. ") split too; that only makes a finer unit, never a wrong chunk.
fn sentences(line: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let cjk_stop = matches!(c, '。' | '！' | '？');
        if !(cjk_stop || matches!(c, '.' | '!' | '?' | '…')) {
            continue;
        }
        let mut end = i + c.len_utf8();
        while let Some(&(j, closer)) = chars.peek() {
            if !matches!(closer, '"' | '\'' | '”' | '’' | ')' | ']' | '»' | '」') {
                break;
            }
            end = j + closer.len_utf8();
            chars.next();
        }
        let at_space = chars.peek().is_none_or(|(_, next)| next.is_whitespace());
        if cjk_stop || at_space {
            push_trimmed(line, start, end, &mut spans);
            start = end;
        }
    }
    push_trimmed(line, start, line.len(), &mut spans);
    spans
}

fn push_trimmed(text: &str, start: usize, end: usize, spans: &mut Vec<(usize, usize)>) {
    let span = &text[start..end];
    let trimmed = span.trim_start();
    let start = start + (span.len() - trimmed.len());
    let trimmed = trimmed.trim_end();
    if !trimmed.is_empty() {
        spans.push((start, start + trimmed.len()));
    }
}

/// Cuts `text[start..end]` into runs of whole words of at most `granule` tokens; a single word
/// longer than that (a URL, a hash, base64) is cut between characters.
fn split_words(text: &str, start: usize, end: usize, granule: usize, out: &mut Vec<Unit>) {
    let mut piece: Option<(usize, usize, usize)> = None;
    for (word_start, word_end) in words(text, start, end) {
        let tokens = count_tokens(&text[word_start..word_end]);
        if let Some((piece_start, piece_end, piece_tokens)) = piece {
            if piece_tokens + tokens <= granule {
                piece = Some((piece_start, word_end, piece_tokens + tokens));
                continue;
            }
            out.push(unit(piece_start, piece_end, piece_tokens));
            piece = None;
        }
        if tokens <= granule {
            piece = Some((word_start, word_end, tokens));
        } else {
            split_characters(text, word_start, word_end, granule, out);
        }
    }
    if let Some((piece_start, piece_end, piece_tokens)) = piece {
        out.push(unit(piece_start, piece_end, piece_tokens));
    }
}

fn words(text: &str, start: usize, end: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let span = &text[start..end];
    span.split_whitespace().map(move |word| {
        // `split_whitespace` yields subslices of `span`, so the pointer difference is the
        // word's offset within it.
        let offset = word.as_ptr() as usize - span.as_ptr() as usize;
        (start + offset, start + offset + word.len())
    })
}

fn split_characters(text: &str, start: usize, end: usize, granule: usize, out: &mut Vec<Unit>) {
    let mut counter = TokenCounter::default();
    let mut piece_start = start;
    for (i, c) in text[start..end].char_indices() {
        let at = start + i;
        let mut with_c = counter;
        with_c.push(c);
        if with_c.total() > granule && at > piece_start {
            out.push(unit(piece_start, at, counter.total()));
            piece_start = at;
            counter = TokenCounter::default();
            counter.push(c);
        } else {
            counter = with_c;
        }
    }
    out.push(unit(piece_start, end, counter.total()));
}

fn unit(start: usize, end: usize, tokens: usize) -> Unit {
    Unit {
        start,
        end,
        tokens,
        paragraph_start: false,
    }
}

/// Greedy packing of units into chunks of at most `budget` tokens, as inclusive unit index
/// ranges. Every unit is at most `budget` tokens, so every chunk gets at least one new unit.
fn pack(units: &[Unit], budget: usize, overlap: usize) -> Vec<(usize, usize)> {
    let mut chunks = Vec::new();
    let mut start = 0;
    // First unit not yet in any chunk; the units before it in a chunk are overlap.
    let mut fresh = 0;
    while fresh < units.len() {
        let mut end = start;
        let mut tokens = 0;
        while let Some(unit) = units.get(end) {
            if tokens + unit.tokens > budget {
                break;
            }
            // Rather than start a paragraph that will not fit, end here, if that leaves the
            // chunk at least half full and the chunk already has something new.
            if end > fresh
                && unit.paragraph_start
                && tokens >= budget / 2
                && tokens + paragraph_tokens(units, end) > budget
            {
                break;
            }
            tokens += unit.tokens;
            end += 1;
        }
        if end <= fresh {
            // Cannot happen (units fit the budget and the overlap leaves room), but never
            // loop for ever on a bug.
            end = fresh + 1;
        }
        chunks.push((start, end - 1));
        fresh = end;
        if fresh >= units.len() {
            break;
        }
        start = overlap_start(units, start, fresh, budget, overlap);
    }
    chunks
}

/// Tokens from `from` to the end of its paragraph.
fn paragraph_tokens(units: &[Unit], from: usize) -> usize {
    let mut tokens = 0;
    for (i, unit) in units.iter().enumerate().skip(from) {
        if i > from && unit.paragraph_start {
            break;
        }
        tokens += unit.tokens;
    }
    tokens
}

/// Where the next chunk starts: as many whole units from the end of the last chunk as fit in
/// `overlap`, without taking the whole last chunk and leaving room for the next new unit.
fn overlap_start(
    units: &[Unit],
    start: usize,
    fresh: usize,
    budget: usize,
    overlap: usize,
) -> usize {
    let next = units.get(fresh).map_or(0, |u| u.tokens);
    let mut first = fresh;
    let mut tokens = 0;
    while first > start + 1 {
        let Some(unit) = units.get(first - 1) else {
            break;
        };
        if tokens + unit.tokens > overlap || tokens + unit.tokens + next > budget {
            break;
        }
        tokens += unit.tokens;
        first -= 1;
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::DocumentKind;

    fn document(sections: Vec<(Vec<&str>, String)>) -> Extracted {
        Extracted {
            kind: DocumentKind::Markdown,
            title: None,
            sections: sections
                .into_iter()
                .map(|(headings, text)| Section {
                    headings: headings.into_iter().map(str::to_owned).collect(),
                    text,
                    page: None,
                })
                .collect(),
        }
    }

    fn settings(max_tokens: usize, overlap_tokens: usize) -> ChunkSettings {
        ChunkSettings {
            max_tokens,
            overlap_tokens,
        }
    }

    /// Sentences "Sentence number N is here." of 5 tokens each.
    fn prose(first: usize, count: usize) -> String {
        (first..first + count)
            .map(|n| format!("Sentence {} is here.", number_word(n)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn number_word(n: usize) -> String {
        // Letters only, so each sentence is exactly five tokens.
        let letters = [
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
        ];
        let mut word = String::new();
        for digit in n.to_string().chars() {
            word.push_str(
                letters[digit.to_digit(10).unwrap() as usize]
                    .get(..2)
                    .unwrap(),
            );
        }
        word
    }

    /// The longest end of `previous` that `next` starts with.
    fn shared_edge<'a>(previous: &str, next: &'a str) -> &'a str {
        (1..=next.len().min(previous.len()))
            .rev()
            .filter(|&k| next.is_char_boundary(k))
            .map(|k| &next[..k])
            .find(|prefix| previous.ends_with(prefix))
            .unwrap_or("")
    }

    /// The invariants every chunking must keep.
    fn check_invariants(doc: &Extracted, chunks: &[Chunk], settings: &ChunkSettings) {
        for (i, chunk) in chunks.iter().enumerate() {
            assert_eq!(chunk.ordinal as usize, i, "ordinals are sequential");
            assert!(!chunk.text.trim().is_empty(), "no blank chunks");
            assert_eq!(
                chunk.tokens as usize,
                count_tokens(&chunk.indexed_text()),
                "tokens counts the indexed text"
            );
            let heading_tokens = count_tokens(&heading_line(&chunk.headings));
            let bound = settings
                .max_tokens
                .max(heading_tokens + settings.max_tokens.div_ceil(2));
            assert!(
                chunk.tokens as usize <= bound,
                "chunk {i} has {} tokens, over {bound}",
                chunk.tokens
            );
            let section = doc
                .sections
                .iter()
                .find(|s| s.headings == chunk.headings && s.text.contains(&chunk.text));
            assert!(section.is_some(), "chunk {i} lies within one section");
        }
    }

    #[test]
    fn a_short_section_is_one_chunk_with_its_headings() {
        let doc = document(vec![
            (
                vec!["Leave", "Parental leave"],
                "Twelve weeks, paid.".into(),
            ),
            (vec!["Travel"], "Book early.".into()),
            (vec!["Blank"], "  \n\n ".into()),
        ]);
        let chunks = chunk(&doc, &ChunkSettings::default());
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].text, "Twelve weeks, paid.");
        assert_eq!(
            chunks[0].indexed_text(),
            "Leave > Parental leave\nTwelve weeks, paid."
        );
        assert_eq!(
            chunks[0].location().as_deref(),
            Some("Leave > Parental leave")
        );
        assert_eq!(chunks[0].tokens, 4 + 5);
        assert_eq!(chunks[1].ordinal, 1);
        assert_eq!(chunks[1].headings, ["Travel"]);
    }

    #[test]
    fn long_sections_split_within_the_bound_and_overlap_in_whole_sentences() {
        let doc = document(vec![
            (vec!["Policy"], prose(0, 100)),
            (vec!["Other"], prose(100, 3)),
        ]);
        let settings = settings(50, 10);
        let chunks = chunk(&doc, &settings);
        check_invariants(&doc, &chunks, &settings);
        let policy: Vec<_> = chunks.iter().filter(|c| c.headings == ["Policy"]).collect();
        assert!(policy.len() >= 10);
        for pair in policy.windows(2) {
            let (previous, next) = (&pair[0].text, &pair[1].text);
            let shared = shared_edge(previous, next);
            assert!(
                shared.starts_with("Sentence") && shared.ends_with('.'),
                "overlap is whole sentences: {shared:?}"
            );
            let tokens = count_tokens(shared);
            assert!((5..=10).contains(&tokens), "overlap of {tokens} tokens");
        }
        // Nothing is lost: every sentence is in some chunk.
        for n in 0..100 {
            let sentence = format!("Sentence {} is here.", number_word(n));
            assert!(
                policy.iter().any(|c| c.text.contains(&sentence)),
                "{sentence}"
            );
        }
        assert_eq!(chunks.last().unwrap().headings, ["Other"]);
    }

    #[test]
    fn cuts_prefer_paragraph_boundaries() {
        let text = format!("{}\n\n{}\n\n{}", prose(0, 6), prose(10, 6), prose(20, 6));
        let doc = document(vec![(vec![], text)]);
        let settings = settings(40, 0);
        let chunks = chunk(&doc, &settings);
        check_invariants(&doc, &chunks, &settings);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].text, prose(0, 6));
        assert_eq!(chunks[1].text, prose(10, 6));
    }

    #[test]
    fn a_sentence_longer_than_the_budget_is_cut_by_words_and_a_long_word_by_characters() {
        let long_sentence = (0..300)
            .map(|i| format!("w{}", number_word(i)))
            .collect::<Vec<_>>()
            .join(" ");
        let blob = "QUJD".repeat(500);
        let doc = document(vec![(vec!["Data"], format!("{long_sentence}\n\n{blob}"))]);
        let settings = settings(30, 8);
        let chunks = chunk(&doc, &settings);
        check_invariants(&doc, &chunks, &settings);
        assert!(chunks.len() > 10);
        let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
        assert!(joined.contains("wze") && joined.contains("QUJDQUJD"));
    }

    #[test]
    fn the_bound_holds_for_many_settings_and_shapes() {
        let text = format!(
            "{}\n\n- item one\n- item two\n\n{}\n\n{}\n日本語の文章です。次の文です。\n",
            prose(0, 40),
            "x".repeat(2000),
            prose(50, 3)
        );
        let doc = document(vec![
            (vec!["A heading", "that is fairly long"], text.clone()),
            (vec![], text),
        ]);
        for max in [1, 2, 5, 16, 50, 200] {
            for overlap in [0, 3, 40, 500] {
                let settings = settings(max, overlap);
                let chunks = chunk(&doc, &settings);
                check_invariants(&doc, &chunks, &settings);
            }
        }
    }

    #[test]
    fn a_huge_heading_path_still_leaves_half_the_budget_for_text() {
        let headings = vec!["word"; 80];
        let doc = document(vec![(headings, prose(0, 30))]);
        let settings = settings(40, 5);
        let chunks = chunk(&doc, &settings);
        check_invariants(&doc, &chunks, &settings);
        assert!(chunks.iter().all(|c| count_tokens(&c.text) <= 20));
    }

    #[test]
    fn pages_are_kept_and_located() {
        let mut doc = document(vec![(vec![], "Page text.".into())]);
        doc.sections[0].page = Some(3);
        let chunks = chunk(&doc, &ChunkSettings::default());
        assert_eq!(chunks[0].page, Some(3));
        assert_eq!(chunks[0].location().as_deref(), Some("page 3"));
        assert_eq!(chunks[0].indexed_text(), "Page text.");
    }

    #[test]
    fn sentences_split_after_terminal_punctuation_and_closing_quotes() {
        let line = "He said \"Stop.\" Then left! Is 3.5 ok? Yes… 終わり。次";
        let spans: Vec<&str> = sentences(line).iter().map(|&(s, e)| &line[s..e]).collect();
        assert_eq!(
            spans,
            [
                "He said \"Stop.\"",
                "Then left!",
                "Is 3.5 ok?",
                "Yes…",
                "終わり。",
                "次"
            ]
        );
    }
}
