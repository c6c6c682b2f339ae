"""Short notes: real speech under 3 s, ours against stock, run after run.

    python -m bench --only shortnotes

A short reply ("Yes.", "On my way.") is the most common voice note, and the one
where Whisper's own checks say least: a two-word text is too short for its
compression test to mean anything, and when the first text fails it, what comes
back is a random draw at a sampled temperature, different run after run.

The notes are cut from the real dev set (`../shared/devset/real`, 25 FLEURS
clips in five languages, and jfk): each clip's first words, up to a word
boundary under 1.5 s and under 3 s. The boundaries come from the reference text aligned to the
clip by the model (faster-whisper's `find_alignment`, over the clip padded to
30 s, as stock hears it), and the cut falls at the quietest 20 ms within 0.1 s
of the boundary. The reference of a cut is the words aligned before it.
`sample_audio/yes.wav` (espeak-ng "Yes.") is run beside them, not counted in
the WER: synthetic speech shows the plumbing, real speech the accuracy.

Each note is transcribed `runs` times by each contender in one process;
CTranslate2 seeds its sampling once per thread, so each run draws afresh. A
note "differs" when its runs did not all give the same text (case and
punctuation aside).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
SHORT_S = 3.0
# Each clip is cut twice: its first words up to each of these lengths (a reply of
# a word or two, and a short phrase).
CUTS_S = (1.5, SHORT_S)
# A cut is made only where a note's first words reach this far: shorter ones are
# a syllable or two, cut mid-word as often as not.
SHORTEST_S = 1.0
# The cut falls at the quietest 20 ms this close to the aligned boundary.
CUT_SEARCH_S = 0.1


def run(settings, model_dir: str, work: Path, runs: int) -> dict:
    """The short-notes row: WER over every run of the real cuts (per language
    and in all), and how many notes gave differing text from run to run, for
    ours and for stock faster-whisper (the same model, int8, beam 5, its VAD on)."""
    from faster_whisper import WhisperModel

    from transcribe import Transcriber

    from .run import SAMPLES, _real_notes, _wer

    stock = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=2)
    notes = short_notes(stock, _real_notes(), work)
    yes = SAMPLES / "yes.wav"
    ours = Transcriber(settings)
    contenders = {
        "ours": lambda path: ours.transcribe(path).text,
        "stock": lambda path: " ".join(s.text.strip() for s in stock.transcribe(
            str(path), beam_size=5, vad_filter=True)[0]),
    }
    languages = sorted({lang for _, _, lang in notes})
    print(f"\nshort notes: {len(notes)} real notes of {SHORTEST_S:g}-{SHORT_S:g} s cut from "
          f"the dev set, {runs} runs each: WER over every run, notes whose runs differ")
    print(f"  {'':<8}" + "".join(f"{lang:>8}" for lang in languages)
          + f"{'all':>8}{'differ':>8}  yes.wav")
    results: dict = {"notes": len(notes), "runs": runs}
    for name, transcribe in contenders.items():
        texts: dict[Path, list[str]] = {path: [] for path in [yes, *(n[0] for n in notes)]}
        for _ in range(runs):  # note after note, so a run's draws are not back to back
            for path, said in texts.items():
                said.append(transcribe(path))
        every = [(path, ref, lang, i) for path, ref, lang in notes for i in range(runs)]

        def wer_of(items) -> float:
            return _wer([(n, ref, lang) for n, (_, ref, lang, _) in enumerate(items)],
                        lambda n: texts[items[n][0]][items[n][3]])

        per = {lang: wer_of([item for item in every if item[2] == lang])
               for lang in languages}
        differ = [path.name for path, _, _ in notes if _differ(texts[path])]
        results[name] = {"per_language": per, "all": wer_of(every), "differ": differ,
                         "yes": texts[yes], "texts": {p.name: t for p, t in texts.items()}}
        print(f"  {name:<8}" + "".join(f"{per[lang] * 100:7.1f}%" for lang in languages)
              + f"{results[name]['all'] * 100:7.1f}%{len(differ):>8}  "
              + " / ".join(texts[yes]))
    return results


def _differ(texts: list[str]) -> bool:
    """Whether runs of one note gave different words (case and punctuation aside)."""
    from transcribe.quality import word_keys

    return len({tuple(word_keys(text)) for text in texts}) > 1


def short_notes(whisper, real: list[tuple[Path, str, str]], work: Path
                ) -> list[tuple[Path, str, str]]:
    """(path, reference, language) for each clip of `real` cut to its first words
    under SHORT_S seconds, written as WAV files into `work`."""
    from transcribe.audio import decode

    from .run import _write

    work.mkdir(parents=True, exist_ok=True)
    out = []
    for path, reference, language in real:
        samples = decode(path).samples
        words = aligned_words(whisper, samples, reference, language)
        cuts = {_first_words(samples, words, longest) for longest in CUTS_S}
        for end, said in sorted(cut for cut in cuts if cut is not None):
            note = work / f"short-{path.stem}-{end:.1f}s.wav"
            _write(note, samples[:round(end * SAMPLE_RATE)])
            out.append((note, said, language))
    return out


def aligned_words(whisper, samples: np.ndarray, reference: str, language: str
                  ) -> list[tuple[str, float, float]]:
    """The reference's words with where the model places them in the first 30 s
    of `samples`: (word, start, end)."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    features = whisper.feature_extractor(samples)
    frames = min(features.shape[1], 3000)
    tokenizer = Tokenizer(whisper.hf_tokenizer, whisper.model.is_multilingual,
                          task="transcribe", language=language)
    tokens = tokenizer.encode(" " + reference.strip())
    encoded = whisper.encode(pad_or_trim(features[:, :3000]))
    (words,) = whisper.find_alignment(tokenizer, [tokens], encoded, frames)
    return [(w["word"].strip(), float(w["start"]), float(w["end"])) for w in words]


def _first_words(samples: np.ndarray, words: list[tuple[str, float, float]], longest: float
                 ) -> tuple[float, str] | None:
    """Where to cut after the most words ending under `longest` seconds (and past
    SHORTEST_S), and those words; None when no boundary fits."""
    for count in range(len(words) - 1, 0, -1):
        boundary = (words[count - 1][2] + words[count][1]) / 2
        end = _quietest(samples, boundary)
        if SHORTEST_S <= end <= longest:
            return end, " ".join(word for word, _, _ in words[:count])
    return None


def _quietest(samples: np.ndarray, at: float) -> float:
    hop = SAMPLE_RATE // 50
    first = max(0, round((at - CUT_SEARCH_S) * SAMPLE_RATE))
    last = min(len(samples), round((at + CUT_SEARCH_S) * SAMPLE_RATE))
    frames = samples[first:last][: (last - first) // hop * hop].reshape(-1, hop)
    if not len(frames):
        return at
    quietest = int(np.argmin((frames ** 2).mean(axis=1)))
    return (first + quietest * hop + hop // 2) / SAMPLE_RATE


def _duration(path: Path) -> float:
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


if __name__ == "__main__":  # list the cuts: python -m bench.shortnotes DIR
    import sys

    from faster_whisper import WhisperModel

    from transcribe import Settings, Transcriber

    from .run import _real_notes

    model_dir = Transcriber(Settings.load()).local.resolved.location
    whisper = WhisperModel(model_dir, device="cpu", compute_type="int8")
    work = Path(sys.argv[1])
    work.mkdir(parents=True, exist_ok=True)
    notes = short_notes(whisper, _real_notes(), work)
    for path, ref, lang in notes:
        print(json.dumps({"file": str(path), "ref": ref, "lang": lang,
                          "s": round(_duration(path), 2)}, ensure_ascii=False))
