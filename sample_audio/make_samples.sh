#!/usr/bin/env bash
# How the sample notes were made (kept for provenance; nothing in transcribe runs it).
# Needs Debian's espeak-ng, sox and ffmpeg. The texts are in references.json.
set -eu
out=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT; cd "$tmp"
say() { espeak-ng -v "$1" -s "$2" -w "$3.wav" "$4"; sox "$3.wav" "p_$3.wav" pad 0.5 0.8; }
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }
say en-us 145 wa "Hi Sam, it's me. I'm running about ten minutes late, so please start the meeting without me."
say en-us 145 tg "The train leaves at half past seven tomorrow morning. Don't forget your ticket."
say en-us 145 ios "Remember to buy milk, eggs, bread and coffee on the way home."
say es-419 125 es "Hola María, te llamo mañana por la tarde para hablar del viaje."
say de 145 de "Guten Morgen, das Paket ist heute angekommen. Vielen Dank für deine Hilfe."
say en-us 145 tel "Please call me back when you get this message."
ff -i p_wa.wav -ar 16000 -ac 1 -c:a libopus -b:a 16k -application voip -f ogg "$out/PTT-20240312-WA0007.opus"
ff -i p_tg.wav -ar 48000 -ac 1 -c:a libopus -b:a 32k -f ogg "$out/audio_2024-03-12_18-45-02.ogg"
ff -i p_ios.wav -ar 44100 -ac 1 -c:a aac -b:a 64k "$out/New Recording 12.m4a"
ff -i p_es.wav -ar 44100 -ac 1 -c:a libmp3lame -b:a 64k "$out/AUD-20240311-WA0003.mp3"
ff -i p_de.wav -ar 48000 -ac 1 -c:a libopus -b:a 32k "$out/recording-de.webm"
ff -i p_tel.wav -ar 8000 -ac 1 -c:a pcm_mulaw "$out/voicemail-8k.wav"
sox -n -r 16000 -c 1 silence.wav trim 0 8
ff -i silence.wav -ar 16000 -ac 1 -c:a libopus -b:a 16k -application voip -f ogg "$out/silence.opus"
sox -n -r 16000 -c 1 noise.wav synth 8 pinknoise vol 0.05
ff -i noise.wav -ar 48000 -ac 1 -c:a libopus -b:a 32k -f ogg "$out/room-noise.ogg"
# yes.wav: a one-word reply, "Yes.", said 2.5 s after a real sentence in tests/test_accuracy.py
# (not a note of its own, so not in references.json).
espeak-ng -v en -s 130 -w "$out/yes.wav" "Yes."
# music-box.ogg: a tune without a voice, made by make_music.py (numpy and PyAV).
