//! CLIP's byte-pair-encoding tokenizer, matching open_clip 3.3's `SimpleTokenizer` and
//! `open_clip.tokenize` (`src/open_clip/tokenizer.py`, the default `clean="lower"` mode).
//!
//! The vocabulary is OpenAI's `bpe_simple_vocab_16e6.txt.gz` (MIT, © 2021 OpenAI; notice in
//! `bpe_simple_vocab_16e6.LICENSE` beside this file), embedded in the binary: 256 byte symbols,
//! the same with `</w>` (end of word), 48,894 merges, `<start_of_text>` ([`SOT`]) and
//! `<end_of_text>` ([`EOT`]); 49,408 ids.
//!
//! # Pipeline (what open_clip does, step by step)
//!
//! 1. `ftfy.fix_text` (ftfy 6.3), per line: the text is cut after every `\n` (and every
//!    1,000,000 characters); once a piece contains `<`, HTML unescaping is off for it and
//!    every later piece. Each piece is fixed until nothing changes by: HTML entities (ftfy's
//!    rules: only `&name;` / `&#…;` forms, plus ALL-CAPS variants of lower-case names such as
//!    `&EACUTE;`), C1 controls read as Windows-1252, Latin ligatures (`ﬁ` → `fi`, `ĳ`, `ǆ`, …),
//!    fullwidth/halfwidth forms (U+FF01..U+FFEF by NFKC, U+3000 → space), curly quotes
//!    (U+02BC, U+2018..U+201B → `'`; U+201C..U+201F → `"`), line breaks (CRLF, CR, U+2028,
//!    U+2029, U+0085 → `\n`), ANSI terminal escapes, control characters (U+0000..U+0008,
//!    U+000B, U+000E..U+001F, U+007F, U+206A..U+206F, U+FEFF, U+FFF9..U+FFFC), then NFC.
//! 2. Python's `html.unescape`, twice (numeric references with the HTML5 replacement table,
//!    named references with or without `;` as the HTML5 rules allow).
//! 3. Whitespace runs collapsed to one space and stripped, with Python's `str.isspace` (which,
//!    unlike [`char::is_whitespace`], includes U+001C..U+001F); then `str.lower()` (final sigma
//!    included, as [`str::to_lowercase`] does).
//! 4. Pieces from the pattern
//!    `<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
//!    with the `regex` module's IGNORECASE. On lower-cased text that flag only lets `ſ`
//!    (U+017F) stand for `s`, and it makes the `regex` module skip U+0345 (combining
//!    ypogegrammeni) entirely: it then matches neither `[\p{L}]` nor `[^\s\p{L}\p{N}]`.
//!    Both quirks are reproduced. A piece spelling a special token is that token's id.
//! 5. Each other piece: UTF-8 bytes → byte symbols, the last one with `</w>`; merges applied
//!    lowest rank first, all occurrences left to right, until none applies.
//!
//! `tests/tokenizer.rs` checks the cleaned text and the ids against open_clip on every text in
//! `tests/fixtures/tokenizer_reference.json` (made by `tools/make_tokenizer_fixtures.py`).
//!
//! # Not reproduced
//!
//! - ftfy's mojibake repair (`fix_encoding`: "cafÃ©" → "café", `restore_byte_a0`,
//!   `decode_inconsistent_utf8`, …): it rests on a large heuristic that is not carried over.
//!   Such text is tokenized as written (after the other fixes). Correctly encoded text, which
//!   ftfy leaves alone, is unaffected.
//! - Named HTML entities outside HTML 4: Python knows all 2,231 HTML5 names; this table holds
//!   HTML 4's 252 (`html.entities.name2codepoint`), `&apos;`, `&TRADE;` and the upper-case legacy
//!   forms (`&AMP`, `&LT`, …). Others, like `&checkmark;`, stay as written.
//! - Characters assigned after Unicode 14 (Python 3.11's `str.lower`/NFC) or 16 (Rust's
//!   tables; the `regex` module is at 17): their case mapping and letter/number class follow
//!   Rust's tables, and those differ between Python versions anyway.
//! - `fix_surrogates`: a Rust string cannot hold lone surrogates.
//! - `tokenize` with a context length of 0 returns nothing (open_clip would fall back to 77).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::sync::OnceLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use super::ModelError;

/// Id of `<start_of_text>`, the first token of every tokenized text.
pub const SOT: u32 = 49406;
/// Id of `<end_of_text>`, the last real token of every tokenized text (CLIP pools the text
/// features at its position, see [`eot_position`]).
pub const EOT: u32 = 49407;
/// Context length of every OpenAI / open_clip CLIP text tower.
pub const DEFAULT_CONTEXT_LENGTH: usize = 77;

/// The gzipped merges file, embedded so that the binary needs no data files.
const VOCAB_GZ: &[u8] = include_bytes!("bpe_simple_vocab_16e6.txt.gz");
/// How errors name the embedded file.
const VOCAB_NAME: &str = "embedded bpe_simple_vocab_16e6.txt.gz";
/// open_clip reads `merges[1:49152-256-2+1]`: the merges after the header line.
const N_MERGES: usize = 49152 - 256 - 2;
/// 256 byte symbols, 256 with `</w>`, one per merge, two special tokens.
const VOCAB_SIZE: usize = 512 + N_MERGES + 2;
/// The special tokens' text, as the pattern matches it.
const SOT_TEXT: &str = "<start_of_text>";
const EOT_TEXT: &str = "<end_of_text>";

/// open_clip's pre-tokenizer pattern, rewritten for the `regex` crate on lower-cased text: the
/// `regex` module's IGNORECASE lets `ſ` match `s`, and drops U+0345 from every class (see the
/// module doc). Rust's `\s` is Unicode White_Space, like the `regex` module's.
const PATTERN: &str =
    r"<[sſ]tart_of_text>|<end_of_text>|'[sſ]|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}\x{345}]+";

/// ftfy's `ANSI_RE`; Python's `\d` on `str` is any Nd digit, as Rust's `\d` is.
const ANSI_ESCAPE: &str = r"\x1b\[[\d;]*[a-zA-Z]";

/// ftfy's `max_decode_length`: `fix_text` works on pieces of at most this many characters.
const MAX_DECODE_LENGTH: usize = 1_000_000;

/// ftfy repeats its fixes until the text stops changing; this bound only guards the loop (real
/// text settles in two or three rounds: each round can only unescape one level of entities).
const MAX_FIX_ROUNDS: usize = 64;

/// Named character references: Python's `html.entities.html5` restricted to HTML 4's names
/// (`html.entities.name2codepoint`), `apos`, `TRADE` and the legacy names. Each entry is
/// `name;` then the code point in hex; `*` marks the legacy names that `html.unescape` also
/// accepts without `;` (and as a prefix: `&copy2021` → `©2021`).
const ENTITIES: &str = "\
    AElig;c6* AMP;26* Aacute;c1* Acirc;c2* Agrave;c0* Alpha;391 Aring;c5* Atilde;c3* Auml;c4* \
    Beta;392 COPY;a9* Ccedil;c7* Chi;3a7 Dagger;2021 Delta;394 ETH;d0* Eacute;c9* Ecirc;ca* \
    Egrave;c8* Epsilon;395 Eta;397 Euml;cb* GT;3e* Gamma;393 Iacute;cd* Icirc;ce* Igrave;cc* \
    Iota;399 Iuml;cf* Kappa;39a LT;3c* Lambda;39b Mu;39c Ntilde;d1* Nu;39d OElig;152 Oacute;d3* \
    Ocirc;d4* Ograve;d2* Omega;3a9 Omicron;39f Oslash;d8* Otilde;d5* Ouml;d6* Phi;3a6 Pi;3a0 \
    Prime;2033 Psi;3a8 QUOT;22* REG;ae* Rho;3a1 Scaron;160 Sigma;3a3 THORN;de* TRADE;2122 Tau;3a4 \
    Theta;398 Uacute;da* Ucirc;db* Ugrave;d9* Upsilon;3a5 Uuml;dc* Xi;39e Yacute;dd* Yuml;178 \
    Zeta;396 aacute;e1* acirc;e2* acute;b4* aelig;e6* agrave;e0* alefsym;2135 alpha;3b1 amp;26* \
    and;2227 ang;2220 apos;27 aring;e5* asymp;2248 atilde;e3* auml;e4* bdquo;201e beta;3b2 \
    brvbar;a6* bull;2022 cap;2229 ccedil;e7* cedil;b8* cent;a2* chi;3c7 circ;2c6 clubs;2663 \
    cong;2245 copy;a9* crarr;21b5 cup;222a curren;a4* dArr;21d3 dagger;2020 darr;2193 deg;b0* \
    delta;3b4 diams;2666 divide;f7* eacute;e9* ecirc;ea* egrave;e8* empty;2205 emsp;2003 ensp;2002 \
    epsilon;3b5 equiv;2261 eta;3b7 eth;f0* euml;eb* euro;20ac exist;2203 fnof;192 forall;2200 \
    frac12;bd* frac14;bc* frac34;be* frasl;2044 gamma;3b3 ge;2265 gt;3e* hArr;21d4 harr;2194 \
    hearts;2665 hellip;2026 iacute;ed* icirc;ee* iexcl;a1* igrave;ec* image;2111 infin;221e int;222b \
    iota;3b9 iquest;bf* isin;2208 iuml;ef* kappa;3ba lArr;21d0 lambda;3bb lang;27e8 laquo;ab* \
    larr;2190 lceil;2308 ldquo;201c le;2264 lfloor;230a lowast;2217 loz;25ca lrm;200e lsaquo;2039 \
    lsquo;2018 lt;3c* macr;af* mdash;2014 micro;b5* middot;b7* minus;2212 mu;3bc nabla;2207 nbsp;a0* \
    ndash;2013 ne;2260 ni;220b not;ac* notin;2209 nsub;2284 ntilde;f1* nu;3bd oacute;f3* ocirc;f4* \
    oelig;153 ograve;f2* oline;203e omega;3c9 omicron;3bf oplus;2295 or;2228 ordf;aa* ordm;ba* \
    oslash;f8* otilde;f5* otimes;2297 ouml;f6* para;b6* part;2202 permil;2030 perp;22a5 phi;3c6 \
    pi;3c0 piv;3d6 plusmn;b1* pound;a3* prime;2032 prod;220f prop;221d psi;3c8 quot;22* rArr;21d2 \
    radic;221a rang;27e9 raquo;bb* rarr;2192 rceil;2309 rdquo;201d real;211c reg;ae* rfloor;230b \
    rho;3c1 rlm;200f rsaquo;203a rsquo;2019 sbquo;201a scaron;161 sdot;22c5 sect;a7* shy;ad* \
    sigma;3c3 sigmaf;3c2 sim;223c spades;2660 sub;2282 sube;2286 sum;2211 sup;2283 sup1;b9* sup2;b2* \
    sup3;b3* supe;2287 szlig;df* tau;3c4 there4;2234 theta;3b8 thetasym;3d1 thinsp;2009 thorn;fe* \
    tilde;2dc times;d7* trade;2122 uArr;21d1 uacute;fa* uarr;2191 ucirc;fb* ugrave;f9* uml;a8* \
    upsih;3d2 upsilon;3c5 uuml;fc* weierp;2118 xi;3be yacute;fd* yen;a5* yuml;ff* zeta;3b6 zwj;200d \
    zwnj;200c";

/// Windows-1252 for bytes 0x80..=0x9F, with the five unassigned bytes kept as C1 controls
/// (ftfy's "sloppy-windows-1252", and Python's `html._invalid_charrefs` for that range).
const CP1252_C1: [char; 32] = [
    '\u{20ac}', '\u{81}', '\u{201a}', '\u{192}', '\u{201e}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{2c6}', '\u{2030}',
    '\u{160}', '\u{2039}', '\u{152}', '\u{8d}', '\u{17d}', '\u{8f}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201c}',
    '\u{201d}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{2dc}', '\u{2122}', '\u{161}', '\u{203a}', '\u{153}', '\u{9d}',
    '\u{17e}', '\u{178}',
];

/// CLIP's BPE tokenizer (see the module doc). Cheap to share: build it once, or use
/// [`Tokenizer::shared`].
pub struct Tokenizer {
    /// (left id, right id) → (merge rank, id of the merged symbol).
    merges: HashMap<(u32, u32), (u32, u32), FastHash>,
    /// Every symbol's text (byte symbols as `bytes_to_unicode` characters), one after the other.
    symbols: String,
    /// Symbol `id` is `symbols[starts[id]..starts[id + 1]]`.
    starts: Vec<u32>,
    /// Named character references without the `&`: `name;`, and `name` for legacy names.
    entities: HashMap<&'static str, char>,
    /// The pre-tokenizer ([`PATTERN`]).
    pattern: Regex,
    /// ANSI terminal escapes ([`ANSI_ESCAPE`]).
    ansi: Regex,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("symbols", &self.starts.len().saturating_sub(1))
            .field("merges", &self.merges.len())
            .finish()
    }
}

impl Tokenizer {
    /// Builds from the embedded vocabulary (decompress + parse ~49k merges).
    pub fn new() -> Result<Self, ModelError> {
        let corrupt = |what: String| ModelError::corrupt(VOCAB_NAME, what);

        // Only the header and the first 48,894 merges are used: stop decompressing there.
        let mut text = String::with_capacity(1 << 19);
        let mut reader = BufReader::with_capacity(1 << 16, flate2::bufread::GzDecoder::new(VOCAB_GZ));
        for _ in 0..=N_MERGES {
            match reader.read_line(&mut text) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(corrupt(e.to_string())),
            }
        }
        let merge_lines: Vec<&str> = text.lines().skip(1).take(N_MERGES).collect();
        if merge_lines.len() != N_MERGES {
            return Err(corrupt(format!("{} merges, expected {N_MERGES}", merge_lines.len())));
        }

        // The vocabulary: byte symbols, the same with `</w>`, each merge's two halves joined,
        // the special tokens.
        let mut symbols = String::with_capacity(text.len() + 4096);
        let mut starts: Vec<u32> = Vec::with_capacity(VOCAB_SIZE + 1);
        let mut halves = Vec::with_capacity(N_MERGES);
        for suffix in ["", "</w>"] {
            for &b in BYTE_ORDER.iter() {
                starts.push(symbols.len() as u32);
                symbols.push(byte_char(b));
                symbols.push_str(suffix);
            }
        }
        for (rank, line) in merge_lines.iter().enumerate() {
            let mut parts = line.split_whitespace();
            let (Some(left), Some(right), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(corrupt(format!("merge {rank}: expected two symbols, got {line:?}")));
            };
            halves.push((left, right));
            starts.push(symbols.len() as u32);
            symbols.push_str(left);
            symbols.push_str(right);
        }
        for special in [SOT_TEXT, EOT_TEXT] {
            starts.push(symbols.len() as u32);
            symbols.push_str(special);
        }
        starts.push(symbols.len() as u32);
        if starts.len() != VOCAB_SIZE + 1 {
            return Err(corrupt(format!("{} symbols, expected {VOCAB_SIZE}", starts.len() - 1)));
        }

        let mut ids: HashMap<&str, u32, FastHash> = HashMap::with_capacity_and_hasher(VOCAB_SIZE, FastHash);
        for (id, span) in starts.windows(2).enumerate() {
            let symbol = symbols.get(span[0] as usize..span[1] as usize).unwrap_or_default();
            if ids.insert(symbol, id as u32).is_some() {
                return Err(corrupt(format!("symbol {id} ({symbol:?}) appears twice")));
            }
        }
        let mut merges = HashMap::with_capacity_and_hasher(N_MERGES, FastHash);
        for (rank, &(left, right)) in halves.iter().enumerate() {
            let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right)) else {
                return Err(corrupt(format!("merge {rank}: {left} {right} uses an unknown symbol")));
            };
            let merged = (512 + rank) as u32;
            if merges.insert((l, r), (rank as u32, merged)).is_some() {
                return Err(corrupt(format!("merge {rank}: {left} {right} appears twice")));
            }
        }
        drop(ids);

        let mut entities = HashMap::with_capacity(400);
        for entry in ENTITIES.split_whitespace() {
            let bad = || ModelError::Config(format!("tokenizer entity table: bad entry {entry:?}"));
            let semi = entry.find(';').ok_or_else(bad)?;
            let (name, rest) = entry.split_at(semi + 1);
            let (hex, legacy) = match rest.strip_suffix('*') {
                Some(hex) => (hex, true),
                None => (rest, false),
            };
            let c = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32).ok_or_else(bad)?;
            entities.insert(name, c);
            if legacy {
                entities.insert(&name[..semi], c);
            }
        }

        let regex = |p: &str| Regex::new(p).map_err(|e| ModelError::Config(format!("tokenizer pattern: {e}")));
        Ok(Tokenizer { merges, symbols, starts, entities, pattern: regex(PATTERN)?, ansi: regex(ANSI_ESCAPE)? })
    }

    /// Symbol `id`'s text, `None` past the vocabulary.
    fn symbol(&self, id: u32) -> Option<&str> {
        let id = id as usize;
        let (&start, &end) = (self.starts.get(id)?, self.starts.get(id.checked_add(1)?)?);
        self.symbols.get(start as usize..end as usize)
    }

    /// Shared instance built once (std::sync::OnceLock), for callers that tokenize often.
    pub fn shared() -> Result<&'static Tokenizer, ModelError> {
        static SHARED: OnceLock<Result<Tokenizer, String>> = OnceLock::new();
        match SHARED.get_or_init(|| Tokenizer::new().map_err(|e| e.to_string())) {
            Ok(tokenizer) => Ok(tokenizer),
            Err(msg) => Err(ModelError::Config(format!("CLIP tokenizer: {msg}"))),
        }
    }

    /// BPE ids of `text` without SOT/EOT (open_clip SimpleTokenizer.encode).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let clean = self.clean(text);
        let mut ids = Vec::with_capacity(clean.len() / 3 + 1);
        for piece in self.pattern.find_iter(&clean) {
            match piece.as_str() {
                SOT_TEXT => ids.push(SOT),
                EOT_TEXT => ids.push(EOT),
                piece => self.bpe(piece.as_bytes(), &mut ids),
            }
        }
        ids
    }

    /// open_clip.tokenize for one text: [SOT] + encode(text) + [EOT], truncated to context_length with EOT kept
    /// as the last token, padded with 0 to context_length.
    pub fn tokenize(&self, text: &str, context_length: usize) -> Vec<u32> {
        if context_length == 0 {
            return Vec::new();
        }
        let mut ids = Vec::with_capacity(context_length.max(2));
        ids.push(SOT);
        ids.extend(self.encode(text));
        ids.push(EOT);
        if ids.len() > context_length {
            ids.truncate(context_length);
            if let Some(last) = ids.last_mut() {
                *last = EOT;
            }
        }
        ids.resize(context_length, 0);
        ids
    }

    /// Inverse of encode, for debugging / error messages (bytes decoded lossily).
    ///
    /// Like open_clip's `decode`: `</w>` becomes a space, special tokens appear as their text
    /// and padding (id 0) as `!`. Ids past the vocabulary, which open_clip rejects, become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            match self.symbol(id) {
                Some(symbol) => {
                    for c in symbol.chars() {
                        match char_byte(c) {
                            Some(b) => bytes.push(b),
                            None => bytes.extend_from_slice("\u{fffd}".as_bytes()),
                        }
                    }
                }
                None => bytes.extend_from_slice("\u{fffd}".as_bytes()),
            }
        }
        String::from_utf8_lossy(&bytes).replace("</w>", " ")
    }

    /// The text the BPE sees: open_clip's default clean step (`ftfy.fix_text`, `html.unescape`
    /// twice, whitespace collapsed and stripped, lower-cased), as far as the module doc says.
    pub fn clean(&self, text: &str) -> String {
        let fixed = self.fix_text(text);
        let unescaped = self.html_unescape(&self.html_unescape(&fixed));
        let mut collapsed = String::with_capacity(unescaped.len());
        for word in unescaped.split(is_py_space).filter(|w| !w.is_empty()) {
            if !collapsed.is_empty() {
                collapsed.push(' ');
            }
            collapsed.push_str(word);
        }
        collapsed.to_lowercase()
    }

    /// Appends the BPE ids of one piece (its UTF-8 bytes) to `ids`.
    fn bpe(&self, bytes: &[u8], ids: &mut Vec<u32>) {
        let mut word: Vec<u32> = bytes.iter().map(|&b| byte_id(b)).collect();
        let Some(last) = word.last_mut() else { return };
        *last += 256; // the same byte with `</w>`
        while word.len() > 1 {
            let mut best: Option<(u32, u32, u32, u32)> = None; // (rank, left, right, merged)
            for pair in word.windows(2) {
                if let [l, r] = *pair {
                    if let Some(&(rank, merged)) = self.merges.get(&(l, r)) {
                        if best.is_none_or(|b| rank < b.0) {
                            best = Some((rank, l, r, merged));
                        }
                    }
                }
            }
            let Some((_, left, right, merged)) = best else { break };
            // Merge every occurrence, left to right, without overlaps (in place: write <= read).
            let (mut read, mut write) = (0, 0);
            while let Some(&sym) = word.get(read) {
                if sym == left && word.get(read + 1) == Some(&right) {
                    word[write] = merged;
                    read += 2;
                } else {
                    word[write] = sym;
                    read += 1;
                }
                write += 1;
            }
            word.truncate(write);
        }
        ids.extend_from_slice(&word);
    }

    /// `ftfy.fix_text` with its default configuration, less mojibake repair.
    fn fix_text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut unescape = true;
        let mut rest = text;
        while !rest.is_empty() {
            let mut end = rest.find('\n').map_or(rest.len(), |i| i + 1);
            if let Some((cut, _)) = rest[..end].char_indices().nth(MAX_DECODE_LENGTH) {
                end = cut;
            }
            let (segment, tail) = rest.split_at(end);
            // ftfy's "auto" mode: a `<` means HTML; it stays off for the rest of the text.
            if segment.contains('<') {
                unescape = false;
            }
            out.push_str(&self.fix_segment(segment, unescape));
            rest = tail;
        }
        out
    }

    /// ftfy's `fix_and_explain` on one segment: every fix, repeated until nothing changes.
    fn fix_segment(&self, segment: &str, unescape: bool) -> String {
        let mut text = segment.to_string();
        for _ in 0..MAX_FIX_ROUNDS {
            let mut fixed = if unescape { self.ftfy_unescape(&text) } else { text.clone() };
            // fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes: each maps
            // single characters, so one pass applies them in order.
            let mut mapped = String::with_capacity(fixed.len());
            for c in fixed.chars() {
                let c = match c {
                    '\u{80}'..='\u{9f}' => CP1252_C1[c as usize - 0x80],
                    c => c,
                };
                for c in ligature(c).chars() {
                    if c == '\u{3000}' || ('\u{ff01}'..='\u{ffef}').contains(&c) {
                        let wide = if c == '\u{3000}' { " ".to_string() } else { std::iter::once(c).nfkc().collect() };
                        mapped.extend(wide.chars().map(uncurl));
                    } else {
                        mapped.push(uncurl(c));
                    }
                }
            }
            fixed = mapped;
            // fix_line_breaks
            if fixed.contains(['\r', '\u{2028}', '\u{2029}', '\u{85}']) {
                fixed = fixed.replace("\r\n", "\n").replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n");
            }
            // remove_terminal_escapes, then remove_control_chars
            if fixed.contains('\u{1b}') {
                fixed = self.ansi.replace_all(&fixed, "").into_owned();
            }
            fixed.retain(|c| !is_ftfy_control(c));
            // normalization="NFC"
            if !unicode_normalization::is_nfc(&fixed) {
                fixed = fixed.nfc().collect();
            }
            if fixed == text {
                break;
            }
            text = fixed;
        }
        text
    }

    /// ftfy's `unescape_html`: `&name;` (HTML5 names and ALL-CAPS forms of lower-case names)
    /// and `&#…;` (only when `html.unescape` consumes the `;`); nothing without a `;`.
    fn ftfy_unescape(&self, text: &str) -> String {
        if !text.contains('&') {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(amp) = rest.find('&') {
            out.push_str(&rest[..amp]);
            let after = &rest[amp + 1..];
            // `&#?[0-9A-Za-z]{1,24};`
            let hash = after.starts_with('#');
            let body = if hash { &after[1..] } else { after };
            let run = body.bytes().take_while(u8::is_ascii_alphanumeric).count();
            if (1..=24).contains(&run) && body.as_bytes().get(run) == Some(&b';') {
                let len = usize::from(hash) + run + 1;
                let matched = &rest[amp..amp + 1 + len];
                let name = &after[..len];
                if hash {
                    let unescaped = self.html_unescape(matched);
                    out.push_str(if unescaped.contains(';') { matched } else { &unescaped });
                } else if let Some(&c) = self.entities.get(name) {
                    out.push(c);
                } else if let Some(upper) = self.ftfy_upper_entity(name) {
                    out.push_str(&upper);
                } else {
                    out.push_str(matched);
                }
                rest = &after[len..];
            } else {
                out.push('&');
                rest = after;
            }
        }
        out.push_str(rest);
        out
    }

    /// ftfy also decodes `&NAME;` for every all-lower-case `name;` whose ALL-CAPS form means
    /// nothing to `html.unescape`, as the upper-case of the character (`&EACUTE;` → `É`).
    fn ftfy_upper_entity(&self, name: &str) -> Option<String> {
        if name != name.to_ascii_uppercase() {
            return None;
        }
        let lower = name.to_ascii_lowercase();
        let &c = self.entities.get(lower.as_str())?;
        // `html.unescape("&NAME;")` would decode a legacy-name prefix (`&NOTIN;` has none: `NOT`
        // is not a name, `not` is).
        let bare = name.strip_suffix(';')?;
        if (2..=bare.len()).any(|x| self.entities.contains_key(&bare[..x])) {
            return None;
        }
        Some(c.to_uppercase().collect())
    }

    /// Python's `html.unescape` (3.11): `&#123;`, `&#x7b;`, and named references, each with
    /// an optional `;`; a name not found whole is tried as its longest legacy prefix.
    fn html_unescape(&self, text: &str) -> String {
        if !text.contains('&') {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(amp) = rest.find('&') {
            out.push_str(&rest[..amp]);
            let after = &rest[amp + 1..];
            match self.charref(after) {
                Some((replacement, used)) => {
                    out.push_str(&replacement);
                    rest = &after[used..];
                }
                None => {
                    out.push('&');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// One reference after its `&`, as `html._charref` matches it:
    /// `#[0-9]+;?`, `#[xX][0-9a-fA-F]+;?` or `[^\t\n\f <&#;]{1,32};?`.
    /// Returns the replacement and the bytes used, or `None` where the pattern does not match.
    fn charref(&self, s: &str) -> Option<(String, usize)> {
        let b = s.as_bytes();
        let with_semi = |end: usize| if b.get(end) == Some(&b';') { end + 1 } else { end };
        if b.first() == Some(&b'#') {
            let (radix, start) = match b.get(1) {
                Some(b'x' | b'X') => (16, 2),
                _ => (10, 1),
            };
            let digits = b.get(start..).unwrap_or_default();
            let n = digits.iter().take_while(|&&d| (d as char).is_digit(radix)).count();
            if n == 0 {
                return None;
            }
            // Saturate: anything past U+10FFFF reads as U+FFFD.
            let num = digits[..n]
                .iter()
                .filter_map(|&d| (d as char).to_digit(radix))
                .fold(0u32, |acc, d| acc.saturating_mul(radix).saturating_add(d).min(0x11_0000));
            return Some((numeric_charref(num), with_semi(start + n)));
        }
        let mut end = 0;
        for (count, (i, c)) in s.char_indices().enumerate() {
            if count == 32 || matches!(c, '\t' | '\n' | '\x0c' | ' ' | '<' | '&' | '#' | ';') {
                break;
            }
            end = i + c.len_utf8();
        }
        if end == 0 {
            return None;
        }
        let used = with_semi(end);
        let name = &s[..used];
        if let Some(&c) = self.entities.get(name) {
            return Some((c.to_string(), used));
        }
        // Longest prefix of at least two characters that is a (legacy) name.
        let cuts: Vec<usize> = name.char_indices().map(|(i, _)| i).skip(2).collect();
        for &cut in cuts.iter().rev() {
            if let Some(&c) = self.entities.get(&name[..cut]) {
                let mut out = c.to_string();
                out.push_str(&name[cut..]);
                return Some((out, used));
            }
        }
        Some((format!("&{name}"), used))
    }
}

/// Position of the largest id, the first one on ties, as `argmax` does in torch: where a
/// tokenized text has its [`EOT`] (the largest id in the vocabulary). 0 for an empty slice.
pub fn eot_position(ids: &[u32]) -> usize {
    let mut best = (0, 0);
    for (i, &id) in ids.iter().enumerate() {
        if i == 0 || id > best.1 {
            best = (i, id);
        }
    }
    best.0
}

/// `html.unescape`'s numeric references: the HTML5 replacements for C1 and NUL, U+FFFD for
/// surrogates and values past U+10FFFF, nothing for other controls and noncharacters.
fn numeric_charref(num: u32) -> String {
    match num {
        0 => "\u{fffd}".to_string(),
        0x0d => "\r".to_string(),
        0x80..=0x9f => CP1252_C1[num as usize - 0x80].to_string(),
        0xd800..=0xdfff | 0x11_0000.. => "\u{fffd}".to_string(),
        0x01..=0x08 | 0x0b | 0x0e..=0x1f | 0x7f | 0xfdd0..=0xfdef => String::new(),
        n if n & 0xfffe == 0xfffe => String::new(),
        n => char::from_u32(n).map_or_else(|| "\u{fffd}".to_string(), String::from),
    }
}

/// Python's `str.isspace`.
fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// ftfy's `CONTROL_CHARS`, removed by `remove_control_chars`.
fn is_ftfy_control(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{8}'
            | '\u{b}'
            | '\u{e}'..='\u{1f}'
            | '\u{7f}'
            | '\u{206a}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffc}'
    )
}

/// ftfy's `LIGATURES` (Latin only).
fn ligature(c: char) -> std::borrow::Cow<'static, str> {
    let s = match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "\u{2bc}n",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "D\u{17d}",
        'ǅ' => "D\u{17e}",
        'ǆ' => "d\u{17e}",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "\u{17f}t",
        'ﬆ' => "st",
        c => return std::borrow::Cow::Owned(c.to_string()),
    };
    std::borrow::Cow::Borrowed(s)
}

/// ftfy's `uncurl_quotes`.
fn uncurl(c: char) -> char {
    match c {
        '\u{2bc}' | '\u{2018}'..='\u{201b}' => '\'',
        '\u{201c}'..='\u{201f}' => '"',
        c => c,
    }
}

/// The bytes in vocabulary order: open_clip's `bytes_to_unicode()` lists the printable bytes
/// `!`..=`~`, `¡`..=`¬`, `®`..=`ÿ` first (mapped to themselves), then the other 68 in order
/// (mapped to U+0100 onwards).
const BYTE_ORDER: [u8; 256] = {
    let mut order = [0u8; 256];
    let mut n = 0;
    let mut b = 0;
    while b < 256 {
        if is_printable_byte(b as u8) {
            order[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    b = 0;
    while b < 256 {
        if !is_printable_byte(b as u8) {
            order[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    order
};

/// Bytes that `bytes_to_unicode` maps to the same code point.
const fn is_printable_byte(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff)
}

/// Index of a byte among the 68 non-printable ones (0..=0x20, 0x7f..=0xa0, 0xad).
const fn nonprintable_index(b: u8) -> u32 {
    match b {
        0..=0x20 => b as u32,
        0x7f..=0xa0 => 33 + (b - 0x7f) as u32,
        _ => 67,
    }
}

/// `bytes_to_unicode()[b]`.
fn byte_char(b: u8) -> char {
    if is_printable_byte(b) {
        char::from(b)
    } else {
        char::from_u32(256 + nonprintable_index(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
    }
}

/// Vocabulary id of byte `b`'s symbol (its position in [`BYTE_ORDER`]).
fn byte_id(b: u8) -> u32 {
    match b {
        b'!'..=b'~' => (b - b'!') as u32,
        0xa1..=0xac => 94 + (b - 0xa1) as u32,
        0xae..=0xff => 106 + (b - 0xae) as u32,
        _ => 188 + nonprintable_index(b),
    }
}

/// Inverse of [`byte_char`].
fn char_byte(c: char) -> Option<u8> {
    let n = c as u32;
    match n {
        0..=0xff => u8::try_from(n).ok().filter(|&b| is_printable_byte(b)),
        0x100..=0x120 => u8::try_from(n - 0x100).ok(),
        0x121..=0x142 => u8::try_from(n - 0x121 + 0x7f).ok(),
        0x143 => Some(0xad),
        _ => None,
    }
}

/// FxHash (rustc's hasher) for the vocabulary maps: their keys are fixed, so SipHash's
/// flood resistance buys nothing, and building ~100k entries at start-up should be quick.
#[derive(Clone, Copy, Default)]
struct FastHash;

impl BuildHasher for FastHash {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

/// The hasher behind [`FastHash`].
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        // hashbrown picks buckets from the low bits and tags from the top 7: mix both ways.
        self.0.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tables_are_consistent() {
        for (i, &b) in BYTE_ORDER.iter().enumerate() {
            assert_eq!(byte_id(b), i as u32, "byte {b:#x}");
            assert_eq!(char_byte(byte_char(b)), Some(b), "byte {b:#x}");
        }
        let chars: std::collections::HashSet<char> = (0..=255u8).map(byte_char).collect();
        assert_eq!(chars.len(), 256);
    }

    #[test]
    fn python_isspace_and_ftfy_controls() {
        for c in ['\u{1c}', '\u{1f}', '\u{85}', '\u{a0}', '\u{3000}', '\u{b}'] {
            assert!(is_py_space(c), "{c:?}");
        }
        for c in ['\u{200b}', '\u{180e}', 'a', '\u{feff}'] {
            assert!(!is_py_space(c), "{c:?}");
        }
        assert!(is_ftfy_control('\u{1b}') && is_ftfy_control('\u{feff}') && !is_ftfy_control('\t'));
    }
}
