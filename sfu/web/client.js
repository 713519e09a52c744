// Tessera web client: joins a room over /v1/rtc (see sfu/PROTOCOL.md), publishes camera and
// microphone on one peer connection and receives everyone else on a second one.
// /rooms/{room}?token=…&name=… joins automatically. Test options: simulcast=1, publish=0,
// maxBitrate=bps, maxHeight=px, trickle=0 (send no local candidates, neither trickled nor in
// SDPs: the server learns the client's address from its connectivity checks, e.g. through a
// test relay), codec=vp9|av1|h264|vp8 (send the camera in that codec only, by
// setCodecPreferences), transport=tcp (drop every UDP candidate, ours and the server's: ICE
// can only use the server's passive TCP candidates, as behind a firewall that blocks UDP),
// video=0 (microphone only), audio=raw (no echo cancellation, noise suppression or gain
// control: the audio levels the server sees are the input's), relay=1 (iceTransportPolicy
// "relay": connect only through the TURN servers the server gives with `joined`, as behind a
// firewall that blocks UDP or a symmetric NAT).
// The peer connections use the STUN/TURN servers (with credentials) of the `joined` message.
// window.tesseraClient is for tests and embedding apps: send(message), shareTrack(track,
// stream) publishes any video track as a screen share, pub/sub are the peer connections.
(() => {
  'use strict';
  const q = new URLSearchParams(location.search);
  const room = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');
  const $ = (id) => document.getElementById(id);
  const status = (s) => { $('status').textContent = s; };
  const tiles = new Map(); // stream id -> {el, video, participant}
  const tracksById = new Map(); // server track id -> track info
  const names = new Map(); // participant id -> name
  let ws, pub, sub, me, localStream, screenTrack;
  const stats = { joined: false, participant_id: null, inbound: {}, errors: [] };
  window.tesseraStats = stats;

  const noCandidates = q.get('trickle') === '0';
  const relayOnly = q.get('relay') === '1';
  let iceServers = []; // from `joined`: TURN URLs with this participant's credentials
  const tcpOnly = q.get('transport') === 'tcp';
  const isUdpCandidate = (l) => l.startsWith('a=candidate:') && (l.split(' ')[2] || '').toLowerCase() === 'udp';
  const dropUdp = (sdp) => tcpOnly ? sdp.split('\r\n').filter((l) => !isUdpCandidate(l)).join('\r\n') : sdp;
  const sdpOut = (sdp) => noCandidates ? sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate:') && l !== 'a=end-of-candidates').join('\r\n') : dropUdp(sdp);
  const streamOfTrack = new Map(); // receiving MediaStreamTrack id -> server track id (stream id)
  function send(m) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(m)); }

  function tile(id, label, muted) {
    let t = tiles.get(id);
    if (!t) {
      const el = document.createElement('div');
      el.className = 'tile';
      const video = document.createElement('video');
      video.autoplay = true; video.playsInline = true; video.muted = !!muted;
      const lab = document.createElement('div');
      lab.className = 'label';
      el.append(video, lab);
      $('tiles').append(el);
      t = { el, video, lab, stream: new MediaStream() };
      video.srcObject = t.stream;
      tiles.set(id, t);
    }
    t.lab.textContent = label;
    return t;
  }

  function participantTile(pid) {
    return tile('p:' + pid, names.get(pid) || pid);
  }

  async function join(token, name) {
    status('connecting');
    ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/v1/rtc');
    ws.onopen = () => send({ type: 'join', room, token, name });
    ws.onclose = () => status('disconnected');
    ws.onmessage = (ev) => onMessage(JSON.parse(ev.data)).catch((e) => {
      stats.errors.push(String(e)); console.error(e);
    });
  }

  function peer(target) {
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: relayOnly ? 'relay' : 'all' });
    pc.onicecandidate = (e) => {
      if (!e.candidate || noCandidates || (tcpOnly && e.candidate.protocol === 'udp')) return;
      send({ type: 'candidate', target, candidate: e.candidate.toJSON() });
    };
    return pc;
  }

  async function publish() {
    if (q.get('publish') === '0') return;
    const audio = q.get('audio') === 'raw' ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false } : true;
    const video = q.get('video') === '0' ? false : { width: 1280, height: 720 };
    localStream = await navigator.mediaDevices.getUserMedia({ audio, video });
    pub = peer('publish');
    const decls = [];
    for (const track of localStream.getTracks()) {
      const init = { direction: 'sendonly', streams: [localStream] };
      if (track.kind === 'video' && q.get('simulcast') === '1') {
        init.sendEncodings = [
          { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
          { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
          { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
        ];
      }
      const tr = pub.addTransceiver(track, init);
      if (track.kind === 'video' && q.get('codec')) preferCodec(tr, q.get('codec'));
      decls.push({ track_id: track.id, source: track.kind === 'audio' ? 'audio' : 'camera' });
    }
    const me_ = tile('local', (q.get('name') || 'me') + ' (you)', true);
    localStream.getVideoTracks().forEach((t) => me_.stream.addTrack(t));
    await offerPublish(decls);
    $('mute-audio').disabled = false; $('mute-video').disabled = false; $('share').disabled = false;
  }

  // Sends only `codec` (and its retransmissions): the SFU has to take it as it is.
  function preferCodec(transceiver, codec) {
    const caps = RTCRtpSender.getCapabilities('video').codecs;
    const wanted = caps.filter((c) => c.mimeType.toLowerCase() === 'video/' + codec.toLowerCase());
    if (!wanted.length) throw new Error('this browser cannot send ' + codec);
    transceiver.setCodecPreferences(wanted.concat(caps.filter((c) => c.mimeType.toLowerCase() === 'video/rtx')));
  }

  // Publishes a video track as a screen share (the share button's getDisplayMedia track, or
  // any other, e.g. a canvas's captureStream()).
  async function shareTrack(track, stream) {
    screenTrack = track;
    pub.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    await offerPublish(pendingDecls.concat([{ track_id: track.id, source: 'screen' }]));
  }

  let pendingDecls = [];
  async function offerPublish(decls) {
    pendingDecls = decls;
    const offer = await pub.createOffer();
    await pub.setLocalDescription(offer);
    send({ type: 'publish_offer', sdp: sdpOut(pub.localDescription.sdp), tracks: decls });
  }

  async function onMessage(m) {
    switch (m.type) {
      case 'joined':
        me = m.participant_id; stats.joined = true; stats.participant_id = me;
        iceServers = Array.isArray(m.ice_servers) ? m.ice_servers : [];
        if (relayOnly && !iceServers.length) stats.errors.push('relay=1: the server offers no TURN server');
        status('in room ' + m.room + ' as ' + me);
        for (const p of m.participants) { names.set(p.id, p.name); for (const t of p.tracks) tracksById.set(t.track_id, t); }
        if (q.get('maxBitrate')) send({ type: 'set_max_bitrate', bps: Number(q.get('maxBitrate')) });
        await publish();
        break;
      case 'publish_answer':
        await pub.setRemoteDescription({ type: 'answer', sdp: dropUdp(m.sdp) });
        break;
      case 'subscribe_offer': {
        if (!sub) {
          sub = peer('subscribe');
          sub.ontrack = (e) => {
            const sid = e.streams[0] ? e.streams[0].id : e.track.id;
            const info = tracksById.get(sid);
            const pid = info ? info.participant_id : sid;
            streamOfTrack.set(e.track.id, sid);
            const t = participantTile(pid);
            t.stream.addTrack(e.track);
            t.video.play().catch(() => {});
          };
        }
        await sub.setRemoteDescription({ type: 'offer', sdp: dropUdp(m.sdp) });
        const answer = await sub.createAnswer();
        await sub.setLocalDescription(answer);
        send({ type: 'subscribe_answer', sdp: sdpOut(sub.localDescription.sdp) });
        break;
      }
      case 'participant_joined':
        names.set(m.participant.id, m.participant.name);
        for (const t of m.participant.tracks) tracksById.set(t.track_id, t);
        break;
      case 'participant_left': {
        const t = tiles.get('p:' + m.participant_id);
        if (t) { t.el.remove(); tiles.delete('p:' + m.participant_id); }
        break;
      }
      case 'track_published':
        tracksById.set(m.track.track_id, m.track);
        if (q.get('maxHeight') && m.track.source !== 'audio') {
          send({ type: 'set_video_size', track_id: m.track.track_id, max_height: Number(q.get('maxHeight')) });
        }
        break;
      case 'track_unpublished':
        tracksById.delete(m.track_id);
        break;
      case 'mute': {
        const t = tiles.get('p:' + m.participant_id);
        if (t) t.lab.textContent = (names.get(m.participant_id) || m.participant_id) + (m.muted ? ' (muted)' : '');
        break;
      }
      case 'active_speaker':
        for (const [id, t] of tiles) t.el.classList.toggle('speaking', id === 'p:' + m.participant_id);
        stats.active_speaker = m.participant_id;
        break;
      case 'reconnect': {
        // This node is going away: the same page (and token) on the node it names.
        const next = new URL(location.pathname + location.search, m.url);
        stats.reconnecting = next.href;
        location.href = next.href;
        break;
      }
      case 'error':
        stats.errors.push(m.code + ': ' + m.message);
        status('error: ' + m.message);
        break;
    }
  }

  // Sums `fields` of the reports of one type, per kind (remote-* reports name their kind too).
  function sumStats(report, type, fields) {
    const out = {};
    report.forEach((s) => {
      if (s.type !== type) return;
      const a = out[s.kind] || (out[s.kind] = Object.fromEntries(fields.map((f) => [f, 0]).concat([['tracks', 0]])));
      a.tracks += 1;
      for (const f of fields) a[f] = f === 'frameHeight' || f === 'roundTripTime' ? Math.max(a[f], s[f] || 0) : a[f] + (s[f] || 0);
    });
    return out;
  }

  // The selected candidate pair's estimates (availableOutgoingBitrate needs congestion feedback)
  // and its candidates' protocols (udp or tcp) and types (host, srflx, prflx, relay).
  function transportStats(report) {
    let pair = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
    });
    if (!pair) return null;
    const local = report.get(pair.localCandidateId) || {};
    const remote = report.get(pair.remoteCandidateId) || {};
    return { availableOutgoingBitrate: pair.availableOutgoingBitrate || 0, availableIncomingBitrate: pair.availableIncomingBitrate || 0, currentRoundTripTime: pair.currentRoundTripTime || 0,
      localProtocol: local.protocol || null, remoteProtocol: remote.protocol || null, remoteTcpType: remote.tcpType || null, bytesReceived: pair.bytesReceived || 0,
      localCandidateType: local.candidateType || null, remoteCandidateType: remote.candidateType || null, relayProtocol: local.relayProtocol || null };
  }

  // Per received track, by server track id: what arrived and what decoded, in which codec.
  function perTrack(report) {
    const out = {};
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      // A track received again after an unsubscribe has a second receiver: counts add up.
      const codec = s.codecId ? report.get(s.codecId) : null;
      const key = streamOfTrack.get(s.trackIdentifier) || s.trackIdentifier || s.mid;
      const t = out[key] || (out[key] = { kind: s.kind, packetsReceived: 0, framesDecoded: 0, frameHeight: 0, mimeType: null });
      t.packetsReceived += s.packetsReceived || 0;
      t.framesDecoded += s.framesDecoded || 0;
      t.frameHeight = Math.max(t.frameHeight, s.frameHeight || 0);
      if (codec) t.mimeType = codec.mimeType;
    });
    return out;
  }

  // The codecs the publish connection sends.
  function sentCodecs(report) {
    const out = [];
    report.forEach((s) => {
      const codec = s.type === 'outbound-rtp' && s.codecId ? report.get(s.codecId) : null;
      if (codec && !out.includes(codec.mimeType)) out.push(codec.mimeType);
    });
    return out;
  }

  async function collectStats() {
    const out = { active_speaker: stats.active_speaker || null, errors: stats.errors, inbound: {}, outbound: {} };
    if (sub) {
      const report = await sub.getStats();
      out.inbound = sumStats(report, 'inbound-rtp', ['packetsReceived', 'packetsLost', 'framesDecoded', 'totalSamplesReceived', 'frameHeight', 'nackCount', 'retransmittedPacketsReceived', 'freezeCount', 'totalFreezesDuration', 'pliCount', 'framesDropped']);
      out.remote_outbound = sumStats(report, 'remote-outbound-rtp', ['packetsSent', 'reportsSent']);
      out.subscribe_transport = transportStats(report);
      out.tracks = perTrack(report);
    }
    if (pub) {
      const report = await pub.getStats();
      out.outbound = sumStats(report, 'outbound-rtp', ['packetsSent', 'nackCount', 'retransmittedPacketsSent', 'pliCount', 'framesEncoded']);
      out.remote_inbound = sumStats(report, 'remote-inbound-rtp', ['packetsLost', 'roundTripTime', 'roundTripTimeMeasurements']);
      out.publish_transport = transportStats(report);
      out.sent_codecs = sentCodecs(report);
    }
    stats.inbound = out.inbound;
    stats.tracks = out.tracks || {};
    send({ type: 'stats', stats: out });
  }
  setInterval(() => collectStats().catch(() => {}), 1000);

  function toggle(kind, btn, on, off) {
    if (!localStream) return;
    for (const t of localStream.getTracks().filter((t) => t.kind === kind)) {
      t.enabled = !t.enabled;
      btn.textContent = t.enabled ? on : off;
      // The server tells us our own tracks' ids in track_published; the camera button is
      // about the camera, not a screen share.
      for (const [id, info] of tracksById) {
        if (info.participant_id === me && info.source === (kind === 'audio' ? 'audio' : 'camera')) {
          send({ type: 'mute', track_id: id, muted: !t.enabled });
        }
      }
    }
  }
  $('mute-audio').onclick = () => toggle('audio', $('mute-audio'), 'Mute mic', 'Unmute mic');
  $('mute-video').onclick = () => toggle('video', $('mute-video'), 'Stop camera', 'Start camera');
  $('share').onclick = async () => {
    if (screenTrack) return;
    const s = await navigator.mediaDevices.getDisplayMedia({ video: true });
    await shareTrack(s.getVideoTracks()[0], s);
  };
  window.tesseraClient = { send, shareTrack, get pub() { return pub; }, get sub() { return sub; }, get me() { return me; },
    get tracks() { return [...tracksById.values()]; } };
  $('join').onsubmit = (e) => { e.preventDefault(); join($('token').value, $('name').value); $('join').hidden = true; };
  if (q.get('token')) { $('join').hidden = true; join(q.get('token'), q.get('name') || 'guest'); }
})();
