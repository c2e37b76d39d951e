"""Model output → at most K clean sound-event prompts.

Captioners (a real VLM, or the tiny FoleyWorld one) answer in whatever shape they like:
numbered or bulleted lists, a JSON array, one comma-separated line, a polite preamble
("Sure! Here are the sounds:") and a trailing offer of more help. The generator wants short
prompts in the paper's style ("Ocean waves crash loudly"), each naming one audible event,
all distinct. ``clean_prompts`` turns any string into such a list:

1. split into candidate items (JSON array if the text holds one, else lines, else ``;`` / ``,``),
2. strip list markers, labels ("Sound 2:"), quotes, markdown, trailing punctuation,
3. drop chatter (preambles, offers, sentences in the first/second person) and non-sounds
   (a purely visual phrase such as "a beautiful sunset"),
4. cut over-long items at a clause boundary, then to ``max_words`` words,
4b. repair a repeated phrase ("A clock ticks clock ticks" → "A clock ticks": a decoder stuck
    in a loop), then drop what is not well formed (``form_problem``): no content word, a
    dangling last word ("A dog barks at the"), or no sound-making subject ("A crackling",
    "Ticking": a participle or adjective with the noun that makes the sound cut off),
5. drop duplicates and near-duplicates (same normalised words, or string similarity ≥ 0.85
   / word overlap ≥ 0.8 after normalisation), keeping the first (most salient) one,
6. keep the first ``k``.

It never raises on any input and never returns an empty string (hypothesis-tested).

Step 5 is a string test; whether two prompts name the same sound ("A clock ticking steadily" /
"A clock ticks", "A crackling fire" / "Fire crackles") is judged by meaning, with the bundle's
text encoder, in ``models.prompting.prompt_meaning``.

A subject is "noun-like" when it is a content word that is not an adverb (-ly), a participle
(-ing / -ed, minus nouns such as "string" or "shed") or a manner adjective ("loud", "steady").
Crude without a tagger, but it only has to catch truncations; every FoleyWorld caption passes.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable

DEFAULT_K = 5
MAX_WORDS = 12
# Near-duplicate thresholds on normalised text: character-level similarity (difflib ratio)
# catches re-spellings and plurals, word Jaccard catches re-orderings.
SIMILARITY_THRESHOLD = 0.85
JACCARD_THRESHOLD = 0.8

# Words that make a phrase an audible event. Prefix-matched on lower-case words (so "crash"
# covers crashes/crashing), which is crude but predictable; a user can extend it per call.
SOUND_CUES: tuple[str, ...] = (
    "sound", "noise", "audio", "crash", "flap", "bark", "yelp", "howl", "growl", "meow", "purr",
    "chirp", "tweet", "sing", "song", "whistl", "ring", "chim", "bell", "tick", "tock", "clock",
    "hum", "buzz", "drone", "roar", "rumbl", "thunder", "rain", "drip", "drop", "patter", "splash",
    "splatter", "gurgl", "bubbl", "pour", "wave", "surf", "wind", "gust", "rustl", "whoosh", "swoosh",
    "knock", "tap", "bang", "thud", "thump", "clap", "clatter", "clang", "clank", "clink", "click",
    "clack", "creak", "squeak", "squeal", "screech", "scrap", "scratch", "crunch", "crack", "crackl",
    "snap", "pop", "sizzl", "hiss", "fizz", "footstep", "step", "walk", "run", "stomp", "shuffl",
    "engine", "motor", "car", "truck", "train", "horn", "siren", "alarm", "beep", "honk", "rev",
    "voice", "speech", "talk", "speak", "shout", "yell", "scream", "laugh", "cry", "whisper",
    "murmur", "chatter", "applause", "cheer", "music", "piano", "guitar", "drum", "beat", "strum",
    "hammer", "saw", "drill", "typing", "keyboard", "door", "slam", "glass", "shatter", "break",
    "fire", "burn", "explo", "gun", "shot", "blast", "boom", "bird", "dog", "cat", "cow", "moo",
    "horse", "neigh", "gallop", "hoof", "insect", "cricket", "frog", "croak", "bee", "fly",
    "water", "stream", "river", "ocean", "sea", "flow", "wash", "spray", "sail", "rattl", "jingl",
    "shak", "rolling", "roll", "skid", "brak", "zip", "flutter", "fan", "vacuum", "blender",
    "kettle", "boil", "fry", "chop", "splinter", "echo", "loud", "quiet", "soft", "rhythm",
    "beating", "strik", "hit", "slap", "rub", "brush", "sweep", "wheel", "squish", "puff", "blow",
    "breath", "snor", "cough", "sneez", "gulp", "chew", "munch", "sniff", "pant", "wail", "moan",
    "whine", "coo", "caw", "quack", "honk", "hoot", "cluck", "oink", "baa", "bleat", "trill",
)
# Words that mark a purely visual description. A phrase with one of these and no sound cue is
# a non-sound ("a beautiful sunset", "the colourful sky").
VISUAL_ONLY: tuple[str, ...] = (
    "beautiful", "pretty", "scenic", "colourful", "colorful", "sunset", "sunrise", "sky", "view",
    "image", "picture", "photo", "frame", "scene", "shows", "showing", "depicts", "visible",
    "color", "colour", "bright", "dark", "light", "shadow", "landscape", "silhouette", "red",
    "blue", "green", "yellow", "white", "black", "orange", "purple",
)
# Lines that are the model talking to us, not items.
_CHATTER = re.compile(
    r"^(sure|okay|ok|certainly|of course|here (are|is)|these are|the following|below|"
    r"i (hope|can|have|think|would|will|'ll|see)|i'm|let me|feel free|note:|note that|"
    r"hope this|if you|would you|do you|please|thank|in this (video|image|scene|clip)|"
    r"the (video|image|scene|clip|frames?) (shows?|depicts?|contains?)|"
    r"(possible|likely|audible|distinct) sound|sound events?:|answer:|output:|assistant:?$)",
    re.IGNORECASE,
)
_PERSONAL = re.compile(r"\b(i|me|my|you|your|we|us|our|let's)\b", re.IGNORECASE)
_MARKER = re.compile(
    r"^\s*(?:[-*•·–—+>]+|\(?\d{1,3}[.):\]]|\(?[a-zA-Z][.)]\s|#+|\[\s*\d*\s*\])\s*"
)
_LABEL = re.compile(
    r"^\s*(?:(?:sound(?:\s+event)?|event|prompt|track|item|source)\s*#?\s*\d*\s*[:\-–—]|"
    r"[a-z ]{1,20}\s*:)\s*",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = frozenset("a an the of and with in on at to from by its their his her some".split())
# A prompt ending in one of these was cut off mid-phrase ("A dog barks at the").
_DANGLING = frozenset("a an the of and or with at to from into onto while as for "
                      "its their his her some this that very".split())
# Manner adjectives: describe a sound, never make one.
_MANNER = frozenset("loud quiet soft steady steadily distant gentle heavy faint sharp low high rhythmic constant "
                    "continuous repeated rapid slow fast deep muffled sudden intermittent occasional".split())
# Nouns that look like participles.
_NOUN_ING = frozenset("string spring thing swing sling wing king ceiling building morning evening clothing "
                      "awning pudding railing ring sing bring sting".split())
_NOUN_ED = frozenset("bed sled shed seed weed speed reed steed bread shred".split())


@dataclass
class CleanResult:
    """The prompts kept and, for the record, what was dropped and why."""

    prompts: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (text, reason)


def _nfkc(text: str) -> str:
    # Control/format characters (zero-width spaces, bidi marks) never belong in a prompt.
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch if unicodedata.category(ch)[0] != "C" or ch in "\n\t" else " " for ch in text)


def _json_items(text: str) -> list[str] | None:
    """Items of the first JSON array in ``text`` (strings, or objects with a text-ish field)."""
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, list):
        return None
    items: list[str] = []
    for el in data:
        if isinstance(el, str):
            items.append(el)
        elif isinstance(el, dict):
            for key in ("prompt", "sound", "event", "caption", "text", "description", "label"):
                if isinstance(el.get(key), str):
                    items.append(el[key])
                    break
    return items if items else None


def split_items(text: str) -> list[str]:
    """Raw candidate items of a model answer, in order."""
    text = _nfkc(text)
    found = _json_items(text)
    if found is not None:
        return found
    # Sentences on one line ("Waves crash. Gulls cry.") are separate items too.
    lines = [sent for ln in re.split(r"[\r\n]+", text)
             for sent in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'*])", ln) if sent.strip()]
    items: list[str] = []
    for ln in lines:
        body = ln.strip()
        if ";" in body:
            items.extend(p for p in body.split(";"))
        elif len(lines) == 1 and "," in body:
            parts = [p for p in body.split(",") if p.strip()]
            # "rain, thunder, footsteps on gravel" is a list; "a dog barks, then runs" is one event.
            if len(parts) > 1 and all(len(p.split()) <= 5 for p in parts):
                items.extend(parts)
            else:
                items.append(body)
        else:
            items.append(body)
    return items


def strip_item(item: str) -> str:
    """List markers, labels, quotes, markdown and trailing punctuation off one item."""
    s = " ".join(item.split())
    for _ in range(3):  # markers can stack: "- 1. **Sound 1:** ..."
        before = s
        s = _MARKER.sub("", s)
        s = s.replace("**", "").replace("__", "").replace("`", "")
        s = s.strip(" \"'“”‘’«»*_#").strip()
        s = _LABEL.sub("", s) if _LABEL.match(s) and len(s.split(":", 1)[-1].split()) >= 1 else s
        if s == before:
            break
    # A parenthetical ("(in the background)") or a trailing explanation after a dash adds words,
    # not a new event.
    s = re.sub(r"\s*\([^)]*\)\s*", " ", s)
    s = re.split(r"\s+[–—-]\s+", s, maxsplit=1)[0]
    s = s.strip(" .,:;!?\"'“”‘’*_-–—")
    return " ".join(s.split())


def words_of(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def normalise(text: str) -> str:
    """Comparison key: lower-case words, no stop-words, crude suffix stripping (-s, -es, -ing,
    -ed) so "dog barks" and "dog barking" compare equal."""
    out = []
    for w in words_of(text):
        if w in _STOP:
            continue
        if len(w) > 5 and w.endswith("ing"):
            w = w[:-3]
        elif len(w) > 4 and w.endswith("ed"):
            w = w[:-2]
        elif len(w) > 3 and w.endswith("es") and w[-3] in "shxz":
            w = w[:-2]
        elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return " ".join(out)


def is_chatter(item: str) -> bool:
    s = item.strip()
    if not s:
        return True
    if _CHATTER.match(s):
        return True
    if s.endswith(":") or s.endswith("?"):
        return True
    # Full sentences addressed to the user ("I can hear ...", "Let me know ...").
    return bool(_PERSONAL.search(s)) and len(s.split()) > 3


def has_sound_cue(text: str, extra_cues: Iterable[str] = ()) -> bool:
    cues = tuple(SOUND_CUES) + tuple(c.lower() for c in extra_cues)
    return any(w.startswith(c) for w in words_of(text) for c in cues)


def is_non_sound(text: str, extra_cues: Iterable[str] = ()) -> bool:
    """True for purely visual phrases: no sound cue and a visual-only word, or no sound cue and
    no verb-like word at all ("a wooden table")."""
    if has_sound_cue(text, extra_cues):
        return False
    ws = words_of(text)
    if any(w in VISUAL_ONLY for w in ws):
        return True
    # A verb-ish token (3rd person -s after the first word, or -ing/-ed) means an event happens.
    verbish = any(
        (i > 0 and w.endswith("s") and not w.endswith("ss")) or w.endswith("ing") or w.endswith("ed")
        for i, w in enumerate(ws)
    )
    return not verbish


def shorten(item: str, max_words: int = MAX_WORDS) -> str:
    """At most ``max_words`` words, cutting at the first clause boundary when that suffices."""
    ws = item.split()
    if len(ws) <= max_words:
        return item
    for sep in (",", " while ", " as ", " and then ", " which ", " that "):
        head = item.split(sep, 1)[0].strip()
        if 0 < len(head.split()) <= max_words and head != item:
            return head.strip(" ,.;:")
    return " ".join(ws[:max_words]).strip(" ,.;:")


def is_near_duplicate(a: str, b: str) -> bool:
    na, nb = normalise(a), normalise(b)
    if not na or not nb:
        return a.strip().lower() == b.strip().lower()
    if na == nb:
        return True
    if difflib.SequenceMatcher(None, na, nb).ratio() >= SIMILARITY_THRESHOLD:
        return True
    sa, sb = set(na.split()), set(nb.split())
    return len(sa & sb) / max(1, len(sa | sb)) >= JACCARD_THRESHOLD


def collapse_repeats(text: str) -> str:
    """Immediately repeated word runs collapsed to one ("A clock ticks clock ticks" → "A clock
    ticks"), longest runs first; words compare case- and punctuation-insensitively."""
    toks = text.split()
    key = [w.strip(".,;:!?\"'").lower() for w in toks]
    changed = True
    while changed:
        changed = False
        for n in range(len(toks) // 2, 0, -1):
            for i in range(len(toks) - 2 * n + 1):
                if key[i:i + n] == key[i + n:i + 2 * n] and any(key[i:i + n]):
                    del toks[i + n:i + 2 * n], key[i + n:i + 2 * n]
                    changed = True
                    break
            if changed:
                break
    return " ".join(toks)


def _noun_like(word: str) -> bool:
    if word in _STOP or word in _DANGLING or word in _MANNER:
        return False
    if word.endswith("ly") and len(word) > 4:
        return False
    if len(word) > 4 and word.endswith("ing"):
        return word in _NOUN_ING
    if len(word) > 4 and word.endswith("ed"):
        return word in _NOUN_ED
    return True


def form_problem(text: str) -> str | None:
    """Why ``text`` is not a well-formed sound prompt, or None (see module docstring)."""
    ws = words_of(text)
    content = [w for w in ws if w not in _STOP and w not in _DANGLING]
    if not content:
        return "no content words"
    if collapse_repeats(text) != " ".join(text.split()):
        return "repeated phrase"
    if ws[-1] in _DANGLING:
        return f"cut off after {ws[-1]!r}"
    if not any(_noun_like(w) for w in content):
        return "no sound-making subject"
    return None


def _sentence_case(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def clean_prompts_detailed(
    text: Any,
    k: int = DEFAULT_K,
    max_words: int = MAX_WORDS,
    extra_cues: Iterable[str] = (),
    drop_non_sounds: bool = True,
    check_form: bool = True,
) -> CleanResult:
    """See the module docstring; also returns what was dropped and why."""
    res = CleanResult()
    if text is None:
        return res
    if not isinstance(text, str):
        text = str(text)
    extra = tuple(extra_cues)
    for raw in split_items(text):
        item = strip_item(raw)
        if not item or not any(ch.isalnum() for ch in item):
            continue
        if is_chatter(item):
            res.dropped.append((item, "chatter"))
            continue
        item = shorten(item, max_words)
        item = _sentence_case(" ".join(item.split()))
        if not item or not any(ch.isalnum() for ch in item):
            continue
        if drop_non_sounds and is_non_sound(item, extra):
            res.dropped.append((item, "not a sound"))
            continue
        if check_form:
            fixed = _sentence_case(collapse_repeats(item))
            if fixed != item:
                res.dropped.append((item, f"repeated phrase, kept as {fixed!r}"))
                item = fixed
            problem = form_problem(item)
            if problem is not None:
                res.dropped.append((item, f"not well formed: {problem}"))
                continue
        dup_of = next((p for p in res.prompts if is_near_duplicate(p, item)), None)
        if dup_of is not None:
            res.dropped.append((item, f"duplicate of {dup_of!r}"))
            continue
        if len(res.prompts) >= max(0, int(k)):
            res.dropped.append((item, f"beyond k={k}"))
            continue
        res.prompts.append(item)
    return res


def clean_prompts(text: Any, k: int = DEFAULT_K, max_words: int = MAX_WORDS,
                  extra_cues: Iterable[str] = (), drop_non_sounds: bool = True) -> list[str]:
    """Any model output → at most ``k`` distinct, non-empty prompts of ≤ ``max_words`` words."""
    return clean_prompts_detailed(text, k, max_words, extra_cues, drop_non_sounds).prompts


def dedupe_prompts(prompts: Iterable[str]) -> list[str]:
    """Order-preserving near-duplicate removal for prompts that are already clean (user ones)."""
    out: list[str] = []
    for p in prompts:
        p = " ".join(str(p).split())
        if p and not any(is_near_duplicate(q, p) for q in out):
            out.append(p)
    return out
