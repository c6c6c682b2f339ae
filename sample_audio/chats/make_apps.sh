#!/usr/bin/env bash
# How the voice notes of the signal/, messenger/, instagram/, discord/ and imessage-*/
# fixtures were made from the sample notes one folder up (kept for provenance; nothing in
# transcribe runs it). Needs ffmpeg, and PyAV for the AAC-in-CAF note (ffmpeg's CAF muxer
# writes no AAC). The chat texts beside them are written by hand after each exporter's code.
set -eu
cd "$(dirname "$0")"
s=..
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }
# Signal: AAC in ADTS, as Signal's voice notes are ("audio/aac"; sigexport names it None.aac)
ff -i "$s/PTT-20240312-WA0007.opus" -ar 44100 -ac 1 -c:a aac -b:a 32k -f adts \
   "signal/Sam/media/2024-03-12T18-45-02.000_00_None.aac"
# Messenger and Instagram: AAC in MP4 ("audioclip<ms>_<id>.mp4")
ff -i "$s/audio_2024-03-12_18-45-02.ogg" -ar 44100 -ac 1 -c:a aac -b:a 64k -f mp4 \
   "messenger/your_facebook_activity/messages/inbox/zoe_1234567890/audio/audioclip17102655020000_1234567890.mp4"
cp "messenger/your_facebook_activity/messages/inbox/zoe_1234567890/audio/audioclip17102655020000_1234567890.mp4" \
   "instagram/your_instagram_activity/messages/inbox/sam_17841400000000000/audio/audioclip17102655020000_987654321.mp4"
# Discord: Ogg/Opus 48 kHz, as Discord's voice messages (voice-message.ogg) are
ff -i "$s/New Recording 12.m4a" -ar 48000 -ac 1 -c:a libopus -b:a 32k -f ogg \
   "discord/Direct Messages - Sam [1216000000000000000].json_Files/voice-message-3f9a6c1d2b7e4a50.ogg"
# iMessage: Opus in CAF (iOS 17's audio messages) and AAC in CAF (older ones)
ff -i "$s/PTT-20240312-WA0007.opus" -ar 48000 -ac 1 -c:a libopus -b:a 24k -f caf \
   "imessage-txt/attachments/1/5E0B5F8A-3C6B-4E0C-9B1A-2D7C8F3E6A11.caf"
python3 make_aac_caf.py "$s/New Recording 12.m4a" \
   "imessage-txt/attachments/1/9C4D2E71-0F5A-4B8E-A3D6-7E1B2C9F0D44.caf"
mkdir -p imessage-html/attachments/1
cp imessage-txt/attachments/1/*.caf imessage-html/attachments/1/
