#!/usr/bin/python3
"""Byte-level BPE in the format of OpenAI CLIP's tokenizer, trained on our captions.

Format (what CLIPTokenizer and the C engine read):
  vocab.json   {token: id}: the 256 byte symbols, the same 256 with "</w>",
               one entry per merge, then <|startoftext|> and <|endoftext|> (so
               the end token has the largest id, which CLIP's pooled output uses).
  merges.txt   "#version: 0.2" then one merge per line, "left right", in rank order.
Pre-tokenisation as in CLIP: whitespace collapsed, lower-cased, split into
letters runs, single digits, and runs of other symbols (plus English
contractions); each word's last symbol carries "</w>".

Python's re has no \\p{L}; [^\\W\\d_] (letters) is used for it, which agrees
for every caption we have (all ASCII plus a few Latin letters).

Usage:
  /usr/bin/python3 tools/train/bpe.py --data tools/data/work/emoji64.json \\
      --out tools/train/work/tokenizer --merges 3000
"""
import argparse
import collections
import json
import os
import re

PAT = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+""",
                 re.IGNORECASE)
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode():
    """CLIP's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_ENC = bytes_to_unicode()


def clean(text):
    return re.sub(r"\s+", " ", text).strip().lower()


def pretokenize(text):
    """text -> list of byte-encoded words (strings of byte symbols)."""
    return ["".join(BYTE_ENC[b] for b in w.encode("utf-8")) for w in PAT.findall(clean(text))]


def word_symbols(word):
    return tuple(word[:-1]) + (word[-1] + "</w>",)


def train(texts, n_merges, min_count=2):
    freq = collections.Counter()
    for t in texts:
        freq.update(pretokenize(t))
    words = {w: list(word_symbols(w)) for w in freq}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, syms in words.items():
            c = freq[w]
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        # Most frequent pair; ties broken by the pair itself, so runs are reproducible.
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if best[1] < min_count:
            break
        a, b = best[0]
        merges.append((a, b))
        for w, syms in words.items():
            if len(syms) < 2:
                continue
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = out
    return merges


def build_vocab(merges):
    base = list(BYTE_ENC.values())
    vocab = base + [v + "</w>" for v in base]
    vocab += ["".join(m) for m in merges]
    vocab += [BOS, EOS]
    return {t: i for i, t in enumerate(vocab)}


def save(out_dir, merges):
    os.makedirs(out_dir, exist_ok=True)
    vocab = build_vocab(merges)
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(a + " " + b + "\n")
    return vocab


class Tokenizer:
    """Encodes like CLIPTokenizer: <|startoftext|> ids <|endoftext|>, then padding."""

    def __init__(self, tok_dir):
        with open(os.path.join(tok_dir, "vocab.json"), encoding="utf-8") as f:
            self.vocab = json.load(f)
        with open(os.path.join(tok_dir, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().strip().split("\n")[1:]
        self.ranks = {tuple(line.split()): i for i, line in enumerate(lines)}
        self.bos, self.eos = self.vocab[BOS], self.vocab[EOS]
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        syms = list(word_symbols(word))
        while len(syms) > 1:
            # The pair of lowest merge rank is merged first, everywhere in the word.
            pair = min(zip(syms, syms[1:]), key=lambda p: self.ranks.get(p, 1 << 30))
            if pair not in self.ranks:
                break
            a, b = pair
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        self.cache[word] = syms
        return syms

    def encode(self, text, length=77):
        ids = [self.bos]
        for w in pretokenize(text):
            ids += [self.vocab[s] for s in self.bpe(w)]
        ids = ids[:length - 1] + [self.eos]
        return ids + [self.eos] * (length - len(ids))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="tools/data/work/emoji64.json")
    ap.add_argument("--out", default="tools/train/work/tokenizer")
    ap.add_argument("--merges", type=int, default=3000)
    args = ap.parse_args()
    with open(args.data, encoding="utf-8") as f:
        recs = json.load(f)["records"]
    texts = [c for r in recs for c in r["captions"]]
    merges = train(texts, args.merges)
    vocab = save(args.out, merges)
    tok = Tokenizer(args.out)
    words = sum(len(pretokenize(t)) for t in texts)
    toks = sum(len([i for i in tok.encode(t, 200) if i != tok.eos]) - 1 for t in texts)
    print("merges %d, vocab %d, %d captions, %.2f tokens per word" %
          (len(merges), len(vocab), len(texts), toks / max(1, words)))
    print(tok.encode("a red heart")[:8])


if __name__ == "__main__":
    main()
