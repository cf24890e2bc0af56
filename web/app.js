// TogetherShot page logic. Talks only to this origin's native job API.
// Stores nothing in the browser: no cookie, no localStorage, no
// sessionStorage. The job token lives in this page's memory and goes only to
// this server (headers, or the URL for <img> and EventSource, which cannot
// set headers; Referrer-Policy keeps it from leaking anywhere else).
'use strict';

(function () {
  const MAX_FILES = 4;
  const $ = (id) => document.getElementById(id);

  const state = {
    ageConfirmed: false, // page memory only (never sent, never stored)
    files: [],
    thumbUrls: [],
    job: null, // {id, token, expiresAt (ms, local clock)}
    events: null,
    countdownTimer: null,
  };

  // ------------------------------------------------------------ errors

  function showError(text) {
    const box = $('error');
    box.textContent = text;
    box.hidden = false;
    box.setAttribute('tabindex', '-1');
  }

  function clearError() {
    $('error').hidden = true;
    $('error').textContent = '';
  }

  async function apiError(resp) {
    try {
      const body = await resp.json();
      if (body && body.error && body.error.message) {
        const m = body.error.message;
        return m.charAt(0).toUpperCase() + m.slice(1) + (m.endsWith('.') ? '' : '.');
      }
    } catch (e) { /* not JSON */ }
    return 'The server answered ' + resp.status + '. Please try again.';
  }

  // ------------------------------------------------------------ age gate

  $('age-yes').addEventListener('click', () => {
    state.ageConfirmed = true;
    $('age-gate').hidden = true;
    $('app').hidden = false;
    $('prompt').focus();
  });

  // ------------------------------------------------------------ photos

  function renderThumbs() {
    state.thumbUrls.forEach((u) => URL.revokeObjectURL(u));
    state.thumbUrls = [];
    const list = $('thumbs');
    list.textContent = '';
    state.files.forEach((file, i) => {
      const li = document.createElement('li');
      const img = document.createElement('img');
      const url = URL.createObjectURL(file);
      state.thumbUrls.push(url);
      img.src = url;
      img.alt = 'Photo ' + (i + 1);
      const rm = document.createElement('button');
      rm.type = 'button';
      rm.className = 'remove';
      rm.textContent = '×';
      rm.setAttribute('aria-label', 'Remove photo ' + (i + 1));
      rm.addEventListener('click', () => {
        state.files.splice(i, 1);
        renderThumbs();
      });
      li.append(img, rm);
      list.append(li);
    });
  }

  function addFiles(list) {
    clearError();
    for (const f of list) {
      if (state.files.length >= MAX_FILES) {
        showError('You can add at most ' + MAX_FILES + ' photos.');
        break;
      }
      state.files.push(f);
    }
    renderThumbs();
  }

  $('files').addEventListener('change', (e) => {
    addFiles(e.target.files);
    e.target.value = '';
  });

  const drop = $('drop');
  ['dragenter', 'dragover'].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault();
    drop.classList.add('over');
  }));
  ['dragleave', 'drop'].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault();
    drop.classList.remove('over');
  }));
  drop.addEventListener('drop', (e) => {
    if (e.dataTransfer && e.dataTransfer.files) addFiles(e.dataTransfer.files);
  });

  // ------------------------------------------------------------ generate

  function setBusy(busy) {
    $('go').disabled = busy;
    $('go').textContent = busy ? 'Working…' : 'Generate';
  }

  function setProgress(text, fraction) {
    $('progress-box').hidden = false;
    $('status').textContent = text;
    $('bar').value = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
  }

  function buildBody() {
    const f = $('form');
    const fields = {
      prompt: f.prompt.value.trim(),
      negative_prompt: f.negative_prompt.value.trim(),
      size: f.size.value,
      steps: f.steps.value,
      seed: f.seed.value,
    };
    if (state.files.length === 0) {
      const json = { prompt: fields.prompt, size: fields.size };
      if (fields.negative_prompt) json.negative_prompt = fields.negative_prompt;
      if (fields.steps) json.steps = Number(fields.steps);
      if (fields.seed) json.seed = Number(fields.seed);
      return { body: JSON.stringify(json), headers: { 'Content-Type': 'application/json' } };
    }
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) if (v) form.append(k, v);
    state.files.forEach((file) => form.append('image[]', file, 'photo'));
    return { body: form, headers: {} };
  }

  $('form').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!state.ageConfirmed) return;
    clearError();
    if (!$('prompt').value.trim()) {
      showError('Please describe the image you want in the prompt.');
      $('prompt').focus();
      return;
    }
    await forgetJob(true);
    $('notice').hidden = true;
    setBusy(true);
    setProgress('Sending…', 0);
    $('preview').hidden = true;
    let resp;
    try {
      const { body, headers } = buildBody();
      resp = await fetch('/v1/jobs', { method: 'POST', body, headers });
    } catch (err) {
      setBusy(false);
      $('progress-box').hidden = true;
      showError('The server could not be reached. Check your connection and try again.');
      return;
    }
    if (resp.status !== 202) {
      setBusy(false);
      $('progress-box').hidden = true;
      showError(await apiError(resp));
      return;
    }
    const ticket = await resp.json();
    state.job = { id: ticket.id, token: ticket.token, expiresAt: 0 };
    follow(state.job);
  });

  function tokenQuery(job) {
    return '?token=' + encodeURIComponent(job.token);
  }

  function follow(job) {
    const es = new EventSource('/v1/jobs/' + job.id + '/events' + tokenQuery(job));
    state.events = es;
    es.addEventListener('queued', (e) => {
      const d = JSON.parse(e.data);
      setProgress(d.position > 1 ? 'In the queue: ' + (d.position - 1) + ' ahead of you'
        : 'Starting…', 0);
    });
    es.addEventListener('running', () => setProgress('Starting…', 0));
    es.addEventListener('progress', (e) => {
      const d = JSON.parse(e.data);
      const total = d.total || 1;
      const done = (d.image * total + d.step) / ((d.n || 1) * total);
      const label = (d.n > 1 ? 'Image ' + (d.image + 1) + ' of ' + d.n + ', ' : '') +
        'step ' + d.step + ' of ' + total;
      setProgress(label, done);
      if (d.preview) {
        $('preview').src = d.preview;
        $('preview').hidden = false;
      }
    });
    es.addEventListener('done', () => {
      es.close();
      setProgress('Done', 1);
      showResults(job);
    });
    const fail = (e) => {
      es.close();
      setBusy(false);
      $('progress-box').hidden = true;
      let msg = 'The image could not be made.';
      try {
        const d = JSON.parse(e.data);
        if (d.message) msg = d.message.charAt(0).toUpperCase() + d.message.slice(1) + '.';
      } catch (err) { /* keep the default */ }
      showError(msg.replace(/\.\.$/, '.'));
      state.job = null;
    };
    es.addEventListener('failed', fail);
    es.addEventListener('refused', fail);
    es.addEventListener('cancelled', fail);
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED && state.job === job) {
        setBusy(false);
        showError('The connection to the server was lost.');
      }
    };
  }

  // ------------------------------------------------------------ results

  async function showResults(job) {
    setBusy(false);
    const resp = await fetch('/v1/jobs/' + job.id, { headers: { 'X-Job-Token': job.token } });
    if (!resp.ok) {
      showError(await apiError(resp));
      return;
    }
    const st = await resp.json();
    job.expiresAt = Date.now() + st.expires_in * 1000;
    // Say plainly when the model made the images smaller and they were resized up.
    const note = $('size-note');
    note.textContent = st.upscaled
      ? 'Generated at ' + st.native_size + ' (the model\'s own size), upscaled to ' + st.size + '.'
      : 'Generated at ' + st.size + '.';
    note.hidden = false;
    const gallery = $('gallery');
    gallery.textContent = '';
    st.images.forEach((im) => {
      const fig = document.createElement('figure');
      const img = document.createElement('img');
      img.src = im.url + tokenQuery(job);
      img.alt = 'Generated image ' + (im.index + 1);
      const cap = document.createElement('figcaption');
      for (const [label, url, ext] of [['PNG', im.formats.png, 'png'],
        ['JPEG', im.formats.jpeg, 'jpg'], ['WebP', im.formats.webp, 'webp']]) {
        const a = document.createElement('a');
        a.href = url + tokenQuery(job);
        a.download = 'togethershot-' + (im.index + 1) + '.' + ext;
        a.className = 'download';
        a.textContent = 'Download ' + label;
        cap.append(a);
      }
      fig.append(img, cap);
      gallery.append(fig);
    });
    $('results').hidden = false;
    $('progress-box').hidden = true;
    tick();
    state.countdownTimer = setInterval(tick, 1000);
    $('results').scrollIntoView({ behavior: 'smooth', block: 'start' });
  }

  function tick() {
    const job = state.job;
    if (!job) return;
    const left = Math.max(0, Math.round((job.expiresAt - Date.now()) / 1000));
    if (left === 0) {
      forgetJob(false);
      showError('Your images were deleted automatically after the retention time.');
      return;
    }
    const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    const pad = (x) => String(x).padStart(2, '0');
    $('countdown').textContent = 'Deleted automatically in ' + h + ':' + pad(m) + ':' + pad(s) +
      ', or now with the button below.';
  }

  async function forgetJob(deleteOnServer) {
    const job = state.job;
    if (state.events) state.events.close();
    state.events = null;
    clearInterval(state.countdownTimer);
    state.countdownTimer = null;
    state.job = null;
    $('gallery').textContent = '';
    $('results').hidden = true;
    if (job && deleteOnServer) {
      try {
        await fetch('/v1/jobs/' + job.id, { method: 'DELETE',
          headers: { 'X-Job-Token': job.token } });
      } catch (e) { /* it expires anyway */ }
    }
  }

  $('delete').addEventListener('click', async () => {
    const had = state.job !== null;
    await forgetJob(true);
    if (had) {
      clearError();
      $('progress-box').hidden = true;
      $('notice').textContent = 'Deleted. Nothing of those images is left on the server.';
      $('notice').hidden = false;
    }
  });
})();
