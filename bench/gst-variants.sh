#!/usr/bin/env bash
# bench/gst-variants.sh [GROUP...]   groups: x264 compose decode audio (default: all)
#
# Where does the room program's CPU go? Runs stand-alone gst-launch-1.0 / ffmpeg pipelines that
# isolate one stage of the program each, on the same inputs as scripts/bench-compositor (run that
# first: it makes the inputs), and prints the CPU of each variant in cores (CPU-s per wall s),
# measured over BENCH_SECONDS (default 15) after a 3 s warm-up. Pipelines are paced in real time
# (clocksync / sink sync=true). Run on a quiet machine; each line shows what else was running.
# Pipeline descriptions are built as strings and split into gst-launch-1.0's arguments on purpose.
# shellcheck disable=SC2046,SC2086
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/bench-out}
DUR=${BENCH_SECONDS:-15}
WARM=3
TICKS=$(getconf CLK_TCK)
IN=$(ls -d "$OUT"/inputs-v2-*s 2>/dev/null | sort -t- -k3 -n | tail -1)
[[ -n $IN && -s $IN/input4.webm ]] || { echo "no inputs in $OUT: run scripts/bench-compositor first" >&2; exit 1; }
GROUPS_=${*:-x264 compose decode audio}

proc_cpu() { local s; s=$(<"/proc/$1/stat"); s=${s##*) }; set -- $s; echo $(( ${12} + ${13} )); }
machine_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8; exit}' /proc/stat; }

# measure LABEL CMD... : CPU of CMD (a single process) over the window, then SIGINT.
measure() {
    local label=$1 pid c0 c1 m0 m1
    shift
    "$@" >/dev/null 2>&1 &
    pid=$!
    sleep "$WARM"
    kill -0 $pid 2>/dev/null || { printf '  %-58s FAILED (exited early)\n' "$label"; return; }
    c0=$(proc_cpu $pid); m0=$(machine_busy)
    sleep "$DUR"
    c1=$(proc_cpu $pid); m1=$(machine_busy)
    kill -INT $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    awk -v l="$label" -v c=$((c1 - c0)) -v m=$((m1 - m0)) -v t="$TICKS" -v d="$DUR" \
        'BEGIN{printf "  %-58s %6.3f cores   (rest of machine %.2f)\n", l, c/t/d, (m-c)/t/d}'
}

GST=(gst-launch-1.0 -q -e)
X264_TESSERA="speed-preset=veryfast tune=zerolatency bitrate=3000 key-int-max=60 bframes=0 b-adapt=false option-string=scenecut=0:open-gop=0"
RAW=$IN/composed-720p-$((WARM + DUR + 3))s.yuv  # raw I420, about 41 MB per second
RAWCAPS="rawvideoparse width=1280 height=720 format=i420 framerate=30/1"

for g in $GROUPS_; do
case $g in
x264)
    # Real composed content (the 4 inputs, 2x2, unscaled), as raw I420, read from the page cache.
    if [[ ! -s $RAW ]]; then
        ffmpeg -hide_banner -nostdin -loglevel error -y -i "$IN/input1.webm" -i "$IN/input2.webm" \
            -i "$IN/input3.webm" -i "$IN/input4.webm" -filter_complex \
            "[0:v][1:v][2:v][3:v]xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0" -t $((WARM + DUR + 3)) \
            -f rawvideo -pix_fmt yuv420p "$RAW"
    fi
    echo "x264 alone, 1280x720@30 composed content, 3 Mbit/s:"
    src="filesrc location=$RAW ! $RAWCAPS ! clocksync ! queue max-size-buffers=5"
    measure "read raw only (baseline)" "${GST[@]}" $src ! fakesink
    measure "x264enc as Tessera (veryfast zerolatency, threads auto)" "${GST[@]}" $src ! x264enc $X264_TESSERA ! fakesink
    measure "  + threads=2" "${GST[@]}" $src ! x264enc $X264_TESSERA threads=2 ! fakesink
    measure "  + threads=1" "${GST[@]}" $src ! x264enc $X264_TESSERA threads=1 ! fakesink
    measure "  + sliced-threads=false (frame threads)" "${GST[@]}" $src ! x264enc $X264_TESSERA sliced-threads=false ! fakesink
    measure "  + sliced-threads=false threads=2" "${GST[@]}" $src ! x264enc $X264_TESSERA sliced-threads=false threads=2 ! fakesink
    measure "  + vbv-buf-capacity=2000" "${GST[@]}" $src ! x264enc $X264_TESSERA vbv-buf-capacity=2000 ! fakesink
    measure "x264enc veryfast, no tune (lookahead, mb-tree)" "${GST[@]}" $src ! x264enc speed-preset=veryfast bitrate=3000 key-int-max=60 bframes=0 ! fakesink
    measure "x264enc superfast zerolatency" "${GST[@]}" $src ! x264enc ${X264_TESSERA/veryfast/superfast} ! fakesink
    ff=(ffmpeg -hide_banner -nostdin -loglevel error -re -f rawvideo -pix_fmt yuv420p -s 1280x720 -r 30 -i "$RAW")
    measure "ffmpeg read raw only (baseline)" "${ff[@]}" -f null -
    measure "ffmpeg libx264 veryfast 3M -g 60 -bf 0 (as the bench)" "${ff[@]}" -c:v libx264 -preset veryfast -b:v 3M -g 60 -bf 0 -f null -
    measure "ffmpeg libx264 same + -tune zerolatency" "${ff[@]}" -c:v libx264 -preset veryfast -tune zerolatency -b:v 3M -g 60 -bf 0 -f null -
    ;;
compose)
    echo "decode 4 x VP8 + compositor 1280x720@30 (no encoder):"
    dec() { # $1: per-input element chain after the decoder (may be empty)
        local s="" i
        for i in 0 1 2 3; do
            s+="filesrc location=$IN/input$((i + 1)).webm ! matroskademux ! vp8dec ! ${1:+$1 ! }queue max-size-buffers=3 ! c.sink_$((i + 1)) "
        done
        echo "$s"
    }
    V="video/x-raw,format=I420,width=1280,height=720,framerate=30/1"
    BT601="colorimetry=bt601,chroma-site=jpeg"  # what the 640x360 VP8 inputs default to
    BT709="colorimetry=bt709,chroma-site=mpeg2" # what 1280x720 caps default to
    bg() { echo "videotestsrc pattern=solid-color foreground-color=0xff101418 ! $V${1:+,$1} ! c.sink_0"; }
    # Tessera's geometry for 4 participants in the built-in grid: 628x348 tiles with an 8 px
    # margin, each showing rows 2..356 of its input (cover); the background below (zorder 0).
    grid="sink_0::zorder=0"
    pos=(x 8:8 644:8 8:364 644:364)
    for i in 1 2 3 4; do
        grid+=" sink_$i::zorder=$i sink_$i::xpos=${pos[i]%:*} sink_$i::ypos=${pos[i]#*:} sink_$i::width=628 sink_$i::height=348"
    done
    crop() { local s="" i; for i in 1 2 3 4; do s+=" sink_$i::converter-config=GstVideoConverter,GstVideoConverter.src-x=(int)0,GstVideoConverter.src-y=(int)2,GstVideoConverter.src-width=(int)640,GstVideoConverter.src-height=(int)354${1:+,$1}"; done; echo "$s"; }
    unscaled="sink_0::zorder=0 sink_1::zorder=1 sink_2::xpos=640 sink_2::zorder=2 sink_3::ypos=360 sink_3::zorder=3 sink_4::xpos=640 sink_4::ypos=360 sink_4::zorder=4"
    measure "4 x vp8dec -> fakesink (no compositor)" "${GST[@]}" $(for i in 1 2 3 4; do echo "filesrc location=$IN/input$i.webm ! matroskademux ! vp8dec ! fakesink sync=true"; done)
    measure "+ compositor as Tessera today (program renegotiated to" "${GST[@]}" $(dec "") $(bg "") compositor name=c $grid $(crop "") ! "$V,$BT601" ! fakesink sync=true
    echo "      bt601 by the inputs, background left at bt709)"
    measure "+ compositor, background and program pinned to bt601" "${GST[@]}" $(dec "") $(bg "$BT601") compositor name=c $grid $(crop "") ! "$V,$BT601" ! fakesink sync=true
    measure "+ compositor, background and program pinned to bt709" "${GST[@]}" $(dec "") $(bg "$BT709") compositor name=c $grid $(crop "") ! "$V,$BT709" ! fakesink sync=true
    measure "  bt601, compositor max-threads=1" "${GST[@]}" $(dec "") $(bg "$BT601") compositor name=c max-threads=1 $grid $(crop "") ! "$V,$BT601" ! fakesink sync=true
    for m in linear nearest; do
        measure "  bt601, resampler-method=$m" "${GST[@]}" $(dec "") $(bg "$BT601") compositor name=c $grid $(crop "GstVideoConverter.resampler-method=(GstVideoResamplerMethod)$m") ! "$V,$BT601" ! fakesink sync=true
    done
    measure "  bt601, + textoverlay label per input (as Tessera)" "${GST[@]}" $(dec "videoconvert ! textoverlay text=Participant shaded-background=true font-desc=\"Sans Bold 16\" halignment=position valignment=position xpos=0.5 ypos=0.92") $(bg "$BT601") compositor name=c $grid $(crop "") ! "$V,$BT601" ! fakesink sync=true
    cropped=""
    for i in 1 2 3 4; do cropped+=" sink_$i::converter-config=GstVideoConverter,GstVideoConverter.src-x=(int)6,GstVideoConverter.src-y=(int)6,GstVideoConverter.src-width=(int)628,GstVideoConverter.src-height=(int)348"; done
    measure "  bt601, centre 628x348 cropped, not scaled" "${GST[@]}" $(dec "") $(bg "$BT601") compositor name=c $grid $cropped ! "$V,$BT601" ! fakesink sync=true
    measure "  bt601, 1:1 tiles (no scaling, as xstack)" "${GST[@]}" $(dec "") $(bg "$BT601") compositor name=c $unscaled ! "$V,$BT601" ! fakesink sync=true
    ;;
decode)
    echo "decoders, 4 x VP8 640x360@30 to fakesink:"
    for d in vp8dec "vp8dec threads=1" avdec_vp8 "avdec_vp8 max-threads=1"; do
            measure "$d" "${GST[@]}" $(for i in 1 2 3 4; do echo "filesrc location=$IN/input$i.webm ! matroskademux ! $d ! fakesink sync=true"; done)
    done
    ;;
audio)
    echo "audio, 4 x Opus -> audiomixer -> AAC 128 kbit/s:"
    amix() { local s="" i; for i in 1 2 3 4; do s+="filesrc location=$IN/input$i.webm ! matroskademux ! opusdec ! audioconvert ! audioresample ! m. "; done; echo "$s"; }
    acaps="audio/x-raw,format=F32LE,rate=48000,channels=2"
    measure "decode + mix only" "${GST[@]}" $(amix) audiomixer name=m ! $acaps ! fakesink sync=true
    measure "  + avenc_aac (twoloop, as Tessera)" "${GST[@]}" $(amix) audiomixer name=m ! $acaps ! audioconvert ! avenc_aac bitrate=128000 ! fakesink sync=true
    measure "  + avenc_aac aac-coder=fast" "${GST[@]}" $(amix) audiomixer name=m ! $acaps ! audioconvert ! avenc_aac bitrate=128000 aac-coder=fast ! fakesink sync=true
    measure "  + voaacenc" "${GST[@]}" $(amix) audiomixer name=m ! $acaps ! audioconvert ! voaacenc bitrate=128000 ! fakesink sync=true
    ;;
*) echo "unknown group $g" >&2; exit 2 ;;
esac
done
