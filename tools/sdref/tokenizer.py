"""CLIP byte-level BPE tokenizer, from vocab.json + merges.txt.

Steps (the published CLIP tokenizer, as its "fast" variant normalises):
  1. normalise: Unicode NFC, every run of whitespace -> one space, strip,
     lower-case (str.lower, full Unicode).
  2. pre-tokenise with CLIP's pattern, scanning left to right:
       <|startoftext|> | <|endoftext|> | 's|'t|'re|'ve|'m|'ll|'d |
       a run of letters (Unicode category L*) | ONE digit/number char (N*) |
       a run of chars that are neither space, letter nor number
     spaces between pieces are dropped.
  3. each piece -> its UTF-8 bytes -> one printable Unicode char per byte
     (GPT-2's bytes_to_unicode table); the last char of the piece gets the
     word-end marker "</w>"; then BPE: repeatedly merge the adjacent pair
     with the lowest rank in merges.txt until none applies.
  4. ids = [bos] + pieces' token ids (truncated to max_length - 2) + [eos],
     padded to max_length (77) with the pad token of tokenizer_config.json
     (SD 1.x: "<|endoftext|>", SD 2.x OpenCLIP: "!" = id 0).

Not done (deliberately): ftfy's mojibake repair and HTML unescaping of the
original OpenAI implementation, and prompt emphasis syntax "(word:1.2)".
A symbol missing from the vocabulary (impossible with a complete byte
alphabet) maps to the unk token.
"""
import json
import os
import unicodedata

SPECIALS = ("<|startoftext|>", "<|endoftext|>")
CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")


def bytes_to_unicode():
    """byte value -> printable unicode char; printable Latin-1 bytes map to themselves."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def base_vocab_tokens():
    """The 512 base symbols in CLIP's id order: bytes then bytes + "</w>"."""
    t = bytes_to_unicode()
    # CLIP lists the kept printable bytes first (in byte order), then the remapped ones.
    keep = [b for b in range(256) if ord(t[b]) == b]
    rest = [b for b in range(256) if ord(t[b]) != b]
    syms = [t[b] for b in keep + rest]
    return syms + [s + "</w>" for s in syms]


def normalize(text):
    text = unicodedata.normalize("NFC", text)
    text = " ".join(text.split())
    return text.lower()


def _cat(ch):
    return unicodedata.category(ch)[0]


def pretokenize(text):
    """Split normalised text into CLIP's pre-tokens (see module docstring)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        hit = None
        for s in SPECIALS:
            if text.startswith(s, i):
                hit = s
                break
        if hit is None and ch == "'":
            # longest contraction first does not matter: none is a prefix of another
            for c in CONTRACTIONS:
                if text.startswith(c, i):
                    hit = c
                    break
        if hit is not None:
            out.append(hit)
            i += len(hit)
            continue
        c = _cat(ch)
        j = i + 1
        if c == "L":
            while j < n and _cat(text[j]) == "L":
                j += 1
        elif c == "N":
            pass  # one number char per piece
        else:
            while j < n and not text[j].isspace() and _cat(text[j]) not in ("L", "N"):
                j += 1
        out.append(text[i:j])
        i = j
    return out


class CLIPTokenizer:
    def __init__(self, vocab, merges, pad_token="<|endoftext|>", max_length=77,
                 unk_token="<|endoftext|>"):
        self.encoder = dict(vocab)
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.ranks = {tuple(m.split()): i for i, m in enumerate(merges)}
        self.byte_table = bytes_to_unicode()
        self.bos_id = self.encoder["<|startoftext|>"]
        self.eos_id = self.encoder["<|endoftext|>"]
        self.pad_id = self.encoder[pad_token]
        self.unk_id = self.encoder[unk_token]
        self.max_length = max_length
        self.cache = {s: [s] for s in SPECIALS}

    @classmethod
    def from_dir(cls, folder):
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [ln for ln in lines if ln and not ln.startswith("#version")]
        cfg = {}
        p = os.path.join(folder, "tokenizer_config.json")
        if os.path.exists(p):
            with open(p, encoding="utf-8") as f:
                cfg = json.load(f)

        def tok(v, default):
            if isinstance(v, dict):  # AddedToken form {"content": ...}
                v = v.get("content")
            return v if v else default
        return cls(vocab, merges, pad_token=tok(cfg.get("pad_token"), "<|endoftext|>"),
                   max_length=int(cfg.get("model_max_length", 77)) if
                   int(cfg.get("model_max_length", 77)) <= 1024 else 77,
                   unk_token=tok(cfg.get("unk_token"), "<|endoftext|>"))

    def bpe(self, piece):
        """One pre-token (already byte-mapped) -> list of BPE symbols."""
        if piece in self.cache:
            return self.cache[piece]
        word = list(piece[:-1]) + [piece[-1] + "</w>"]
        while len(word) > 1:
            best, best_rank = None, None
            for a, b in zip(word, word[1:]):
                r = self.ranks.get((a, b))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = (a, b), r
            if best is None:
                break
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self.cache[piece] = word
        return word

    def tokens(self, text):
        """Text -> BPE symbols (no BOS/EOS, no padding)."""
        out = []
        for piece in pretokenize(normalize(text)):
            if piece in SPECIALS:
                out.append(piece)
                continue
            mapped = "".join(self.byte_table[b] for b in piece.encode("utf-8"))
            out.extend(self.bpe(mapped))
        return out

    def encode_raw(self, text):
        return [self.encoder.get(t, self.unk_id) for t in self.tokens(text)]

    def __call__(self, text, pad=True):
        """Text -> ids with BOS/EOS, truncated to and (if pad) padded to max_length."""
        ids = self.encode_raw(text)[: self.max_length - 2]
        ids = [self.bos_id] + ids + [self.eos_id]
        if pad:
            ids += [self.pad_id] * (self.max_length - len(ids))
        return ids

    def decode(self, ids):
        inv = {v: k for k, v in self.byte_table.items()}
        text = "".join(self.decoder[i] for i in ids)
        text = text.replace("</w>", " ")
        out = bytearray()
        for ch in text:
            out.extend(ch.encode("utf-8") if ch == " " or ch not in inv else bytes([inv[ch]]))
        return out.decode("utf-8", errors="replace")


def train_bpe(corpus, n_merges):
    """Learn n_merges merges from a list of texts (deterministic: ties broken
    by the pair's string order). Returns (vocab, merges) in CLIP's layout:
    512 base symbols, one symbol per merge, then the two special tokens."""
    table = bytes_to_unicode()
    words = {}
    for text in corpus:
        for piece in pretokenize(normalize(text)):
            if piece in SPECIALS:
                continue
            m = "".join(table[b] for b in piece.encode("utf-8"))
            w = tuple(list(m[:-1]) + [m[-1] + "</w>"])
            words[w] = words.get(w, 0) + 1
    merges = []
    for _ in range(n_merges):
        counts = {}
        for w, c in words.items():
            for p in zip(w, w[1:]):
                counts[p] = counts.get(p, 0) + c
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    syms = base_vocab_tokens() + ["".join(m) for m in merges] + list(SPECIALS)
    vocab = {}
    for s in syms:
        if s not in vocab:
            vocab[s] = len(vocab)
    return vocab, [" ".join(m) for m in merges]
