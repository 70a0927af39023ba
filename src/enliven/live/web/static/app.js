// The live page: sends the webcam to the server over WebRTC, shows the animated stream, drives the controls.
// `enliven.view(video)` (the avatar page) only receives. With ?bench=1 the page reads the frame-index stamps that
// `enliven live --bench` style cameras carry (see enliven/live/overlay.py) from both videos, for latency figures.
"use strict";

const enliven = (() => {
  async function negotiate(peer, role) {
    await peer.setLocalDescription(await peer.createOffer());
    await new Promise((resolve) => {  // no trickle ICE: send the offer with every (loopback/LAN) candidate
      if (peer.iceGatheringState === "complete") return resolve();
      peer.addEventListener("icegatheringstatechange", () => peer.iceGatheringState === "complete" && resolve());
    });
    const response = await fetch("offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: peer.localDescription.sdp, type: peer.localDescription.type, role }),
    });
    if (!response.ok) throw new Error((await response.json()).error);
    await peer.setRemoteDescription(await response.json());
  }

  async function view(video) {
    const peer = new RTCPeerConnection();
    peer.addTransceiver("video", { direction: "recvonly" });
    peer.ontrack = (event) => { video.srcObject = new MediaStream([event.track]); };
    await negotiate(peer, "view");
    return peer;
  }

  async function drive(camera, animated) {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } }, audio: false,
    });
    camera.srcObject = stream;
    const peer = new RTCPeerConnection();
    stream.getVideoTracks().forEach((track) => peer.addTrack(track, stream));
    peer.ontrack = (event) => { animated.srcObject = new MediaStream([event.track]); };
    await negotiate(peer, "drive");
    return peer;
  }

  // -- frame-index stamps (enliven/live/overlay.py): a white square, 12 bits, a black square along the top-left
  // edge, each square 1/32 of the frame's width. Read from every frame a track delivers to the page (a
  // MediaStreamTrackProcessor on a clone of the track: decoded frames, none skipped, no canvas read-back); only the
  // top strip is copied, and only its first plane (luma for YUV frames, RGBA otherwise).
  const COLUMNS = 32, BITS = 12;
  async function readStamp(frame) {
    const width = frame.codedWidth - (frame.codedWidth % 2), side = width / COLUMNS;
    const height = Math.min(frame.codedHeight - (frame.codedHeight % 2), 2 * Math.ceil(side / 2));
    if (side < 4) return null;
    const yuv = /^(I4|NV12)/.test(frame.format);
    const rect = { x: 0, y: 0, width, height };
    const buffer = new Uint8Array(frame.allocationSize({ rect }));
    const layout = await frame.copyTo(buffer, { rect });
    const { offset, stride } = layout[0], step = yuv ? 1 : 4;
    const level = (k) => {
      const margin = Math.floor(side / 4), x0 = Math.round(k * side), x1 = Math.round((k + 1) * side);
      let sum = 0, count = 0;
      for (let y = margin; y < Math.min(height, Math.round(side)) - margin; y++) {
        for (let x = x0 + margin; x < x1 - margin; x++) {
          const i = offset + y * stride + x * step;
          sum += yuv ? buffer[i] : (buffer[i] + buffer[i + 1] + buffer[i + 2]) / 3; count++;
        }
      }
      return sum / count;
    };
    if (level(0) < 170 || level(BITS + 1) > 85) return null;
    let value = 0;
    for (let bit = 0; bit < BITS; bit++) value = (value << 1) | (level(bit + 1) > 127 ? 1 : 0);
    return value;
  }

  async function watchStamps(track, seen) {
    const reader = new MediaStreamTrackProcessor({ track: track.clone() }).readable.getReader();
    for (;;) {
      const { value: frame, done } = await reader.read();
      if (done) return;
      const now = performance.now();
      try {
        const index = await readStamp(frame);
        if (index !== null && !seen.has(index)) seen.set(index, now);
      } finally {
        frame.close();
      }
    }
  }

  // Frames the page's compositor presented (requestVideoFrameCallback's count), for the displayed frame rate.
  function countPresented(video, counts) {
    const onFrame = (now, metadata) => {
      counts.push([now, metadata.presentedFrames]);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  const bench = { camera: new Map(), animated: new Map(), presented: [] };
  // [index, performance.now() when the page got it] of the camera's and the animated stream's stamped frames, and
  // [performance.now(), frames presented so far] of the animated video.
  function benchResults() {
    return { camera: [...bench.camera.entries()], animated: [...bench.animated.entries()], presented: bench.presented };
  }

  // -- controls --
  async function api(path, body) {
    const options = body === undefined ? {} : body instanceof FormData
      ? { method: "POST", body } : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    const response = await fetch(path, options);
    const data = await response.json();
    const error = document.getElementById("error");
    if (!response.ok) { error.textContent = data.error; error.hidden = false; throw new Error(data.error); }
    error.hidden = true;
    return data;
  }

  function showState(state) {
    const avatar = document.getElementById("avatar");
    if (avatar.options.length !== state.avatars.length) {
      avatar.replaceChildren(...state.avatars.map((name, i) => new Option(name, i)));
    }
    avatar.value = state.avatar;
    const mode = document.getElementById("mode");
    if (mode.options.length !== state.modes.length) mode.replaceChildren(...state.modes.map((m) => new Option(m, m)));
    mode.value = state.settings.mode;
    document.getElementById("overlay").value = state.settings.overlay;
    document.getElementById("paste_back").checked = state.settings.paste_back;
    const edits = Object.fromEntries((state.settings.edit || "").split(",").filter(Boolean).map((kv) => kv.split("=")));
    for (const input of document.querySelectorAll("input.edit")) {
      if (document.activeElement !== input) input.value = edits[input.dataset.name] ?? input.defaultValue;
    }
    const status = document.getElementById("status");
    const lost = state.driving && !state.face_found;
    status.textContent = !state.driving ? "waiting for the camera…"
      : `${state.fps.toFixed(1)} fps · ${state.latency_ms} ms on the server` + (lost ? " · face lost: holding the last frame" : "");
    status.classList.toggle("warn", lost);
  }

  async function start() {
    const camera = document.getElementById("camera"), animated = document.getElementById("animated");
    const on = (id, event, handler) => document.getElementById(id).addEventListener(event, handler);
    on("avatar", "change", (e) => api("api/avatar", { index: Number(e.target.value) }).then(showState));
    on("mode", "change", (e) => api("api/settings", { mode: e.target.value }).then(showState));
    on("overlay", "change", (e) => api("api/settings", { overlay: e.target.value }).then(showState));
    on("paste_back", "change", (e) => api("api/settings", { paste_back: e.target.checked }).then(showState));
    on("recalibrate", "click", () => api("api/recalibrate", {}).then(showState));
    // Expression and pose controls: every slider's value, sent as one "name=value,..." edit.
    const sendEdit = () => api("api/settings", {
      edit: [...document.querySelectorAll("input.edit")].filter((i) => i.value !== i.defaultValue)
        .map((i) => `${i.dataset.name}=${i.value}`).join(","),
    }).then(showState).catch(() => {});
    for (const input of document.querySelectorAll("input.edit")) input.addEventListener("change", sendEdit);
    on("edit_reset", "click", () => {
      for (const input of document.querySelectorAll("input.edit")) input.value = input.defaultValue;
      sendEdit();
    });
    on("upload", "change", (e) => {
      const form = new FormData(); form.append("image", e.target.files[0]);
      api("api/upload", form).then(showState).catch(() => {});
      e.target.value = "";
    });
    showState(await api("api/state"));
    setInterval(() => api("api/state").then(showState).catch(() => {}), 1000);
    const benchmark = new URLSearchParams(location.search).has("bench");
    try {
      const peer = await drive(camera, animated);
      if (benchmark) {
        watchStamps(camera.srcObject.getVideoTracks()[0], bench.camera);
        watchStamps(peer.getReceivers().find((r) => r.track.kind === "video").track, bench.animated);
        countPresented(animated, bench.presented);
      }
    } catch (err) {
      const error = document.getElementById("error");
      error.textContent = `The camera could not be started: ${err.message}. Allow camera access and reload.`;
      error.hidden = false;
    }
  }

  return { view, drive, start, benchResults };
})();

if (document.getElementById("camera")) enliven.start();
