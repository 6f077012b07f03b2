"""Generate the reference fixture for tokenclip's CLIP tokenizer (src/clip/tokenizer.rs).

Writes tests/fixtures/tokenizer_reference.json: for every test text, what open_clip's
tokenizer makes of it:

- "clean":    SimpleTokenizer's default clean step (ftfy.fix_text, html.unescape twice,
              whitespace collapsed, lower-cased), the text the BPE sees;
- "encode":   SimpleTokenizer().encode(text), the BPE ids without <start_of_text>/<end_of_text>;
- "tokenize": open_clip.tokenize(text, context_length=77)[0], SOT + ids + EOT, truncated with
              EOT kept last, zero-padded to 77.

Run from anywhere (the output path is relative to this file):

    python3 tools/make_tokenizer_fixtures.py

The versions of open_clip, ftfy, regex and Python (whose unicodedata drives NFC and
str.lower) are recorded in the file's "header". Never hand-edit the JSON: change this
script and run it again.

What is left out of the test list on purpose (named as limits in the module doc of
src/clip/tokenizer.rs):

- Mojibake ("cafÃ©", "â€œquotedâ€\x9d"): ftfy.fix_text's fix_encoding step guesses
  wrongly-decoded UTF-8 with a large heuristic ("badness" regexes over ~200 character classes,
  ten single-byte codecs, restore_byte_a0, ...). tokenclip does not reproduce it. Random texts
  below are drawn again when fix_encoding would change them.
- Named HTML entities outside HTML 4 (html.entities.name2codepoint, 252 names) plus &apos;,
  &TRADE; and the no-semicolon forms: Python knows all 2,231 HTML5 names ("&checkmark;");
  tokenclip embeds only the HTML 4 set. Every name in that set is tested below.
- Characters assigned after Unicode 14 (Python 3.11's unicodedata) / 16 (Rust's regex and
  str::to_lowercase) / 17 (the regex module): their letter/number class and lower-case form
  differ between these tables, so the random pool below holds only older characters.
"""

import html.entities
import json
import os
import platform
import random
import sys
import unicodedata

import ftfy
import open_clip
import regex
from open_clip.tokenizer import SimpleTokenizer

CONTEXT_LENGTH = 77
OUT_PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "tokenizer_reference.json"
)

cases = []


def add(name, text):
    cases.append((name, text))


# --- Plain prompts -----------------------------------------------------------------------
add("plain", "a photo of a damaged object.")
add("plain_flawless", "a photo of a flawless bottle.")
add("plain_upper", "A PHOTO OF A DAMAGED OBJECT.")
add("metal_nut", "a photo of a damaged metal_nut.")
add("visa_names", "pcb1 pcb4 macaroni2 pipe_fryum chewinggum")

# AnomalyCLIP's learnable-prompt placeholders ("X" * 12 + state + "object.").
add("anomalyclip_normal", "X X X X X X X X X X X X object.")
add("anomalyclip_abnormal", "X X X X X X X X X X X X damaged object.")
add("anomalyclip_lower", "x x x x x x x x x x x x object.")

# WinCLIP / AnomalyCLIP-style prompt ensemble: templates x states x a few objects.
TEMPLATES = [
    "a bad photo of a {}.",
    "a low resolution photo of the {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a bright photo of a {}.",
    "a dark photo of the {}.",
    "a photo of my {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a photo of one {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of a large {}.",
    "a blurry photo of a {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a photo of the small {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "a dark photo of a {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "this is the {} in the scene.",
    "this is one {} in the scene.",
]
STATES = [
    "{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect",
    "{} without damage", "damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage",
]
OBJECTS = ["object", "bottle", "metal_nut", "toothbrush", "pcb1", "hazelnut"]
for ti, template in enumerate(TEMPLATES):
    for si, state in enumerate(STATES):
        # A diagonal through the grid keeps the list short but touches every template and state.
        if (ti + si) % 6 == 0 or ti < 2:
            obj = OBJECTS[(ti + si) % len(OBJECTS)]
            add(f"ensemble_t{ti}_s{si}", template.format(state.format(obj)))
add("ensemble_bad_damaged", "a bad photo of a damaged object.")
add("ensemble_cropped_flawless", "a cropped photo of the flawless object.")

# --- Punctuation and numbers ------------------------------------------------------------
add("punct_runs", "hello!!! ... ?!")
add("punct_mixed", "(a)-[b]_{c}/d\\e|f~g`h@i#j$k%l^m&n*o+p=q<r>s")
add("punct_spaced", " , . ; : ' \" ")
add("numbers", "3.14 1234567 ½ ² 10³ ٣ ⅷ ⑤ 𝟙")
add("numbers_glued", "abc123def 1st 2nd 3rd 4th 1,000,000 -42 +7e-3")

# --- Accents, NFC/NFD ---------------------------------------------------------------------
add("cafe_nfc", unicodedata.normalize("NFC", "café"))
add("cafe_nfd", unicodedata.normalize("NFD", "café"))
add("aeroskobing_nfc", unicodedata.normalize("NFC", "Ærøskøbing"))
add("aeroskobing_nfd", unicodedata.normalize("NFD", "Ærøskøbing Århus"))
add("naive_nfc", unicodedata.normalize("NFC", "naïve"))
add("naive_nfd", unicodedata.normalize("NFD", "naïve"))
add("accents_mixed", "Crème Brûlée à la française, Ñandú, Ødegård, Łódź, Şişli, Ĳsselmeer")
add("hangul_jamo", "\u1100\u1161\u11a8 \u1112\u1161\u11ab")
add("combining_stack", "e\u0301\u0302\u0323 a\u0308\u0304 o\u0328\u0301")

# --- Non-Latin scripts --------------------------------------------------------------------
add("chinese", "你好，世界！这是一张损坏物体的照片。")
add("japanese", "こんにちは世界、カタカナとひらがな。")
add("cyrillic", "Привет, мир! ЁЖИК в тумане.")
add("arabic", "مرحبا بالعالم، صورة لجسم تالف.")
add("hindi", "नमस्ते दुनिया, क्षतिग्रस्त वस्तु की तस्वीर।")
add("korean", "안녕하세요 세계, 손상된 물체의 사진.")
add("greek_sigma", "ΟΔΟΣ ΣΑΣ Σ ΑΣ. ὈΔΥΣΣΕΎΣ")
add("greek_iota_sub", "ᾼ ᾳ x\u0345y \u0345")
add("thai", "สวัสดีชาวโลก")
add("hebrew", "שָׁלוֹם עוֹלָם")
add("turkish_i", "İstanbul IŞIK ıi")
add("kelvin_long_s", "5\u212a it'\u017f is'\u017f <\u017ftart_of_text>")

# --- Emoji ----------------------------------------------------------------------------------
add("emoji", "I ❤️ CLIP 😀👍🏽 🎉")
add("emoji_zwj", "family 👨‍👩‍👧‍👦 rainbow 🏳️‍🌈 woman 👩🏿‍💻")
add("emoji_flags_keycap", "🇩🇪🇯🇵 #️⃣ 1️⃣ 🏴󠁧󠁢󠁷󠁬󠁳󠁿")

# --- Whitespace -----------------------------------------------------------------------------
add("whitespace_odd", "  a\tb\n\nc\u00a0d\u3000e\u2003f\u202fg\u205fh\u1680i  ")
add("whitespace_controls", "a\x1cb\x1dc\x1ed\x1fe\x0bf\x0cg\x85h")
add("whitespace_only", "   \n\t \u00a0\u3000 ")
add("line_breaks", "line1\r\nline2\rline3\u2028line4\u2029line5\n")
add("empty", "")

# --- HTML entities ------------------------------------------------------------------------
add("html_amp", "Tom &amp; Jerry")
add("html_amp_amp", "Tom &amp;amp; Jerry &amp;amp;amp; x &amp;amp;amp;amp;amp;")
add("html_numeric", "it&#39;s it&#x27;s it&#X27;s &#34;q&#x22; &#8217;")
add("html_numeric_odd", "a&#0;b &#128;&#x85;&#x9d; &#xD800; &#1114112; &#99999999999999999999999; &#13;x &#x1c;y")
add("html_numeric_nosemi", "&#65 &#x41x &#59; &#38;amp; &#38;#38;#38;amp; &#abc; &#39a; &#x;")
add("html_named_common", "&lt;b&gt; &quot;quoted&quot; &apos;single&apos; a&nbsp;b &copy; &reg; &trade; &hellip;")
add("html_named_nosemi", "&ampersand &copy2021 &notit; &notin; &ltx &amp &lt &gt &nbspx &AMP &Eacutex")
add("html_named_upper", "&EACUTE; &SZLIG; &MICRO; &TRADE; &AMP; &NOTIN; &nTILDE; &Eacute; &SIGMAF; &APOS;")
add("html_unknown", "&foo; &bar &; & amp; &&amp;; &#; a&b")
add("html_lt_disables_ftfy", "a < b &amp;amp;amp; c")
add("html_lt_second_line", "&amp;amp;amp; first\n<b> &amp;amp;amp; second")
add("html_lt_first_line", "<b> first\n&amp;amp;amp; second")
add("html_combining_after_lt", "<x> e&#769; e&#x301;")
add("html_combining", "e&#769; e&#x301; n&#771;")
add("html_curly", "&ldquo;quoted&rdquo; &lsquo;it&rsquo;s&rsquo; &#8220;x&#8221;")
add("html_long_name", "&" + "a" * 24 + "; &" + "a" * 25 + "; &" + "b" * 33 + ";")

# Every named entity tokenclip knows, in its ';' form, in chunks (and the upper-case variants
# that ftfy adds for all-lower-case names, and the legacy forms without ';').
_h5 = html.entities.html5
_names = sorted(set(html.entities.name2codepoint) | {k for k in _h5 if not k.endswith(";")} | {"apos", "TRADE"})
for i in range(0, len(_names), 12):
    chunk = _names[i:i + 12]
    add(f"entities_{i // 12:02}", " ".join(f"&{n};" for n in chunk))
    add(f"entities_upper_{i // 12:02}", " ".join(f"&{n.upper()};" for n in chunk if n == n.lower()))
_legacy = sorted(k for k in _h5 if not k.endswith(";"))
for i in range(0, len(_legacy), 12):
    add(f"entities_legacy_{i // 12:02}", " ".join(f"x&{n}y" for n in _legacy[i:i + 12]))

# --- ftfy fixes -----------------------------------------------------------------------------
add("curly_quotes", "\u201cIt\u2019s\u201d \u2018quoted\u2019 \u201a\u201b\u201e\u201f \u02bcx \u2032")
add("fullwidth", "ＬＯＵＤ　ＮＯＩＳＥＳ！ Ｆｕｌｌｗｉｄｔｈ １２３")
add("halfwidth", "ｳﾙﾄﾗ ﾊﾟﾝ ﾡﾢ ｡｢｣､ ￣ ￠￡￢￤￥￦ ￨￩￪￫￬￭￮")
add("ligatures", "ﬂuﬃeﬆ ﬁne ﬀ ﬄ ﬅ Ĳ ĳ ŉ Ǳ ǲ ǳ Ǆ ǅ ǆ Ǉ ǈ ǉ Ǌ ǋ ǌ")
add("c1_controls", "\x80 euro \x85 dots \x93quoted\x94 \x81\x8d\x8f\x90\x9d \x9f")
add("control_chars", "a\x00b\x07c\x7fd\ufeffe\u200bf\u200dg\u206ah\ufff9i\ufffcj\ufffdk")
add("terminal_escapes", "\x1b[31mred\x1b[0m \x1b[1;32mbold\x1b[m \x1b[٣m \x1bx")
add("fullwidth_apostrophe", "ＩＴ＇Ｓ ｗｅ＇ＬＬ")

# --- Contractions ---------------------------------------------------------------------------
add("contractions_upper", "IT'S We'LL they'RE I'M you'VE he'D don'T")
add("contractions_lower", "it's we'll they're i'm you've he'd don't 's 't ''s x'")
add("contractions_curly", "it\u2019s we\u2019ll")

# --- Special tokens written in text ---------------------------------------------------------
add("special_tokens", "<start_of_text>a photo<end_of_text>")
add("special_tokens_upper", "<START_OF_TEXT> <End_Of_Text>")
add("special_tokens_openai", "<|startoftext|>hi<|endoftext|>")
add("special_tokens_glued", "x<end_of_text>y<start_of_text><end_of_text>")

# --- Length -------------------------------------------------------------------------------
add("exact_75", " ".join(["a"] * 75))
add("exact_76", " ".join(["a"] * 76))
add("long_text", " ".join(
    "a close-up photo of a damaged object with scratches, dents, cracks and contamination on the surface"
    .split() * 6
))
add("long_word", "supercalifragilisticexpialidocious" * 8)
add("long_digits", "3141592653589793238462643383279502884197169399375105820974944592307816406286")

# --- Random texts from a pool of characters ----------------------------------------------
POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list(" \t\n\r.,;:!?'\"-_()[]{}<>/\\|@#$%^&*+=~`")
    + ["&amp;", "&lt;", "&#39;", "&#x27;", "&nbsp;", "&eacute;", "&copy", "&", "#", ";", "'s", "'ll"]
    + list("éèêëàâäîïôöùûüçñßøåæœÉÀÇÑ")
    + ["e\u0301", "a\u0308", "\u0327", "\u0345", "\u0301"]
    + list("Σσςαβγ") + list("абвгдЖЁ") + list("你好世界。，") + list("こんにちはカタ")
    + list("안녕") + list("नमस्ते") + list("مرحبا") + list("½²³٣ⅷ①")
    + ["😀", "👍🏽", "❤️", "👨‍👩‍👧", "🏳️‍🌈", "\u200d", "\ufe0f"]
    + ["\u00a0", "\u3000", "\u2003", "\u2028", "\x85", "\x0b", "\x0c", "\x1c", "\x00", "\x7f", "\ufeff"]
    + ["\u201c", "\u201d", "\u2018", "\u2019", "\u02bc", "ﬁ", "ﬂ", "Ĳ", "Ａ", "ｂ", "１", "！", "ｶ", "ﾟ"]
    + ["\x80", "\x93", "\x9d", "\x1b[1m", "İ", "\u212a", "\u017f"]
)
rng = random.Random(20240601)
n_random = 0
n_redrawn = 0
while n_random < 150:
    text = "".join(rng.choice(POOL) for _ in range(rng.randint(1, 30)))
    # Mojibake repair is not reproduced (see the module doc): draw again when it would act.
    if ftfy.fix_text(text) != ftfy.fix_text(text, fix_encoding=False):
        n_redrawn += 1
        continue
    add(f"random_{n_random:03}", text)
    n_random += 1

# --- Run open_clip ------------------------------------------------------------------------
names = [n for n, _ in cases]
assert len(names) == len(set(names)), "duplicate case names"

tokenizer = SimpleTokenizer()
out_cases = []
for name, text in cases:
    clean = tokenizer.clean_fn(text)
    encode = tokenizer.encode(text)
    tokens = open_clip.tokenize([text], context_length=CONTEXT_LENGTH)[0].tolist()
    assert tokens == tokenizer([text], context_length=CONTEXT_LENGTH)[0].tolist()
    out_cases.append({"name": name, "text": text, "clean": clean, "encode": encode, "tokenize": tokens})

header = {
    "generator": "tools/make_tokenizer_fixtures.py",
    "command": "python3 tools/make_tokenizer_fixtures.py",
    "open_clip": open_clip.__version__,
    "ftfy": ftfy.__version__,
    "regex": regex.__version__,
    "python": platform.python_version(),
    "unicodedata": unicodedata.unidata_version,
    "context_length": CONTEXT_LENGTH,
    "sot": tokenizer.sot_token_id,
    "eot": tokenizer.eot_token_id,
    "vocab_size": tokenizer.vocab_size,
    "random_texts": n_random,
    "random_redrawn_for_mojibake": n_redrawn,
    "note": "clean = SimpleTokenizer().clean_fn(text); encode = SimpleTokenizer().encode(text); "
            "tokenize = open_clip.tokenize([text], context_length)[0]. Generated; do not edit by hand.",
}

# One case per line keeps diffs readable; ensure_ascii shows controls, NBSP and NFD marks as escapes.
lines = ['{"header": ' + json.dumps(header, ensure_ascii=True) + ",", ' "cases": [']
for i, case in enumerate(out_cases):
    lines.append("  " + json.dumps(case, ensure_ascii=True) + ("," if i + 1 < len(out_cases) else ""))
lines.append(" ]}")
os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
with open(OUT_PATH, "w", encoding="ascii") as f:
    f.write("\n".join(lines) + "\n")
json.load(open(OUT_PATH, encoding="ascii"))  # round-trip check
print(f"wrote {len(out_cases)} cases to {os.path.normpath(OUT_PATH)} "
      f"(open_clip {open_clip.__version__}, ftfy {ftfy.__version__}, regex {regex.__version__}, "
      f"Python {platform.python_version()}, {n_redrawn} random texts redrawn)", file=sys.stderr)
