"""PyTorch models through the Blockscope daemon: forward hooks stream a model's activations as a
foreign model (SPEC.md section 7, "Foreign models"), the daemon keeps their Grams, and the
heatmap comes back from its cache.

    import blockscope_client as bs
    heatmap = bs.torch_heatmap(model, loader, layers="all")            # within-model
    cross = bs.torch_heatmap(model, loader, dataset="cifar10:test",    # against a stored model
                             other="r20-k1-cifar10-...")

Optional: this module imports torch (and numpy) only when called; blockscope_client itself
needs neither. What it does, per batch of the loader, under torch.no_grad() with the model in
eval mode (restored afterwards):
  * a forward hook on every chosen module records its output (detached, moved to the CPU,
    copied at once: in-place ops such as ReLU(inplace=True) overwrite tensors later); a module
    called twice in one forward (torchvision's BasicBlock calls its relu twice) gives two
    representations, NAME and NAME#2;
  * fp16 and bf16 outputs are sent as they are (the daemon widens them exactly); other dtypes
    as float32;
  * a BatchNorm in inference mode fed exactly the previous hooked output (its conv's, the same
    values) is declared a channel_affine map of it (scale = weight / sqrt(running_var + eps)):
    it is never sent, and the daemon derives its Gram from the conv's per-channel Grams, as it
    does for its own models (derive_batchnorm=False sends it instead);
  * each batch's outputs go out in SESSION_BATCH frames of up to 64 MiB, through two reused
    memfds (shared memory, no copy through the socket; transfer="socket" puts them in the
    frames instead), two frames in flight.
The first batch also declares the model (SESSION_OPEN): its representations are the hooked
outputs of that batch, in call order. Batch keys: with `dataset="cifar10:test"` (and a loader
that reads that split in order, without shuffling), the dataset reference
"cifar10:test[a:b]" of each batch, so a stored Blockscope model can be compared on the same
images; otherwise a hash of the batch's input tensor, so the same images give the same key.
"""
import hashlib
import os

import blockscope_client as bc

FRAME_TENSOR_BYTES = 64 << 20
DEFAULT_TRANSFER = "memfd" if hasattr(os, "memfd_create") else "socket"


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("torch_heatmap needs PyTorch (pip install torch)") from e
    return torch


def model_fingerprint(model):
    """A stable hash of the model's parameters and buffers (names, dtypes, shapes, values)."""
    torch = _torch()
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(("%s|%s|%s;" % (name, t.dtype, tuple(t.shape))).encode())
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.update(t.numpy().tobytes())
    return "sha256:" + h.hexdigest()[:32]


def _select_modules(model, layers):
    """(name, module) pairs to hook: "all" = every leaf module (no children), a list of names,
    or a predicate f(name, module)."""
    named = [(n, m) for n, m in model.named_modules() if n]
    if layers == "all":
        return [(n, m) for n, m in named if not any(True for _ in m.children())]
    if callable(layers):
        return [(n, m) for n, m in named if layers(n, m)]
    by_name = dict(named)
    missing = [n for n in layers if n not in by_name]
    if missing:
        raise ValueError("no module named %s in the model (named modules: %s%s)"
                         % (", ".join(missing), ", ".join(list(by_name)[:10]),
                            ", ..." if len(by_name) > 10 else ""))
    return [(n, by_name[n]) for n in layers]


def residual_block_of(names):
    """Block numbers for representation names in forward order, torchvision style: modules
    under "layerX.Y." (a stage, then a block index) form block Y of stage X, numbered from 0
    in order of appearance; others (the stem, pool, fc) lie outside every block (None)."""
    blocks, out = {}, []
    for name in names:
        parts = name.split("#")[0].split(".")
        prefix = ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else None
        if prefix is not None and prefix not in blocks:
            blocks[prefix] = len(blocks)
        out.append(blocks.get(prefix) if prefix is not None else None)
    return out


def _wire_tensor(name, t):
    """A CPU copy of one output as a protocol tensor (f16/bf16 kept, anything else f32)."""
    torch = _torch()
    t = t.detach()
    if t.dtype == torch.bfloat16:
        raw = t.to("cpu", copy=True).contiguous().view(torch.int16).numpy()
        return bc.Tensor(name, "bf16", tuple(t.shape), memoryview(raw).cast("B"))
    if t.dtype == torch.float16:
        return bc._activation_tensor(name, t.to("cpu", copy=True).contiguous().numpy())
    return bc._activation_tensor(name, t.to("cpu", torch.float32, copy=True).contiguous().numpy())


class _Recorder:
    """Forward hooks that turn module outputs into named tensors of the current batch.
    With `derive`, the first batch also finds every inference BatchNorm whose input is exactly
    (same values) the output of the representation recorded just before it: `derived` maps its
    representation to {"of", "scale", "shift"} (SPEC.md, "Derived representations"). From then
    on outputs named in `skip` are not copied (they are not sent)."""

    def __init__(self, modules, derive=False):
        self.modules = modules
        self.handles = []
        self.calls = {}
        self.outputs = []          # (representation name, wire tensor), in call order
        self.derive = derive
        self.derived = {}
        self.skip = set()

    def __enter__(self):
        for name, module in self.modules:
            self.handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    def _hook(self, name):
        torch = _torch()

        def hook(module, inputs, output):
            if not isinstance(output, torch.Tensor):
                return             # tuples, dicts: not a representation
            k = self.calls.get(name, 0) + 1
            self.calls[name] = k
            rep = name if k == 1 else "%s#%d" % (name, k)
            if rep in self.skip:
                self.outputs.append((rep, None))
                return
            if self.derive and self.outputs:
                affine = _inference_affine(module, inputs, self.outputs[-1])
                if affine is not None:
                    self.derived[rep] = affine
            self.outputs.append((rep, _wire_tensor(rep, output)))
        return hook

    def take(self):
        out, self.outputs, self.calls = self.outputs, [], {}
        return out


def _inference_affine(module, inputs, previous):
    """{"of", "scale", "shift"} when `module` is a BatchNorm in inference mode (running
    statistics) over channels first whose input holds exactly the values of `previous` (the
    representation recorded just before it: name, wire tensor), else None. The values are
    compared, not the tensor objects: the map is declared only for what was actually fed."""
    torch = _torch()
    bn = torch.nn.modules.batchnorm._BatchNorm
    if not isinstance(module, bn) or module.training or module.running_var is None:
        return None
    if not inputs or not isinstance(inputs[0], torch.Tensor):
        return None
    prev_name, prev = previous
    x = inputs[0]
    if prev is None or x.dim() < 2 or tuple(prev.shape) != tuple(x.shape):
        return None
    fed = _wire_tensor(prev_name, x)
    if fed.dtype != prev.dtype or bytes(fed.data) != bytes(prev.data):
        return None
    with torch.no_grad():
        var = module.running_var.detach().to("cpu", torch.float64)
        mean = module.running_mean.detach().to("cpu", torch.float64)
        scale = 1.0 / torch.sqrt(var + module.eps)
        if module.weight is not None:
            scale = scale * module.weight.detach().to("cpu", torch.float64)
        shift = -mean * scale
        if module.bias is not None:
            shift = shift + module.bias.detach().to("cpu", torch.float64)
    return {"of": prev_name, "scale": [float(v) for v in scale], "shift": [float(v) for v in shift]}


def _batch_input(batch):
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def _input_key(x):
    torch = _torch()
    x = x.detach().to("cpu").contiguous()
    if x.dtype == torch.bfloat16:
        x = x.view(torch.int16)
    return "sha256:" + hashlib.sha256(x.numpy().tobytes()).hexdigest()[:32]


def stream_model(client, model, loader, layers="all", name=None, fingerprint=None,
                 dataset=None, max_batches=None, device=None, block_of=residual_block_of,
                 transfer=DEFAULT_TRANSFER, derive_batchnorm=True):
    """Runs the model over the loader and streams its representations to the daemon as a
    foreign model. block_of(names) -> a block number or None per representation (for
    block-structure detection; None: declare no blocks). transfer: "memfd" (the activations
    go through shared memory; Linux) or "socket" (in the frames). derive_batchnorm: declare each
    BatchNorm fed exactly the previous hooked output (a conv's) as its channel_affine map, so
    that it is never sent and its Gram comes with the conv's (SPEC.md, "Derived
    representations"); the daemon then does what it does for its own models. Returns {"model",
    "fingerprint", "batches" (keys), "representations", "derived" (the BatchNorms not sent)}."""
    torch = _torch()
    if dataset is not None:
        sampler = getattr(loader, "sampler", None)
        if sampler is not None and not isinstance(sampler, torch.utils.data.SequentialSampler):
            raise ValueError("dataset=%r names examples by position: the loader must read the "
                             "split in order (shuffle=False)" % dataset)
    modules = _select_modules(model, layers)
    if not modules:
        raise ValueError("no modules to hook (layers=%r)" % (layers,))
    name = name or type(model).__name__.lower()
    fingerprint = fingerprint or model_fingerprint(model)
    was_training = model.training
    model.eval()
    session, declared, keys, position = None, None, [], 0
    in_flight, sent = [], 0
    if transfer not in ("memfd", "socket"):
        raise ValueError("transfer is 'memfd' or 'socket', not %r" % (transfer,))
    buffers = [bc.MemfdBuffer(), bc.MemfdBuffer()] if transfer == "memfd" else None
    try:
        with torch.no_grad(), _Recorder(modules, derive=derive_batchnorm) as recorder:
            for b, batch in enumerate(loader):
                if max_batches is not None and b >= max_batches:
                    break
                x = _batch_input(batch)
                n = int(x.shape[0])
                start, position = position, position + n
                if n < 4:
                    continue       # the unbiased estimator needs 4 examples
                key = "%s[%d:%d]" % (dataset, start, start + n) if dataset else _input_key(x)
                model(x.to(device) if device is not None else x)
                outputs = recorder.take()
                if session is None:
                    declared = [r for r, _ in outputs]
                    if len(set(declared)) != len(declared):
                        raise ValueError("two hooked outputs share a name")
                    reps = [{"name": r, "shape": list(t.shape[1:])} for r, t in outputs]
                    for rep, block in zip(reps, block_of(declared) if block_of else []):
                        if block is not None:
                            rep["block"] = block
                    for rep in reps:
                        if rep["name"] in recorder.derived:
                            rep["channel_affine"] = recorder.derived[rep["name"]]
                    recorder.derive = False
                    recorder.skip = set(recorder.derived)
                    session = client.session_open(name, fingerprint, reps)["session"]
                elif [r for r, _ in outputs] != declared:
                    raise ValueError("batch %d produced other representations than the first "
                                     "(a data-dependent forward?)" % b)
                frames, size = [[]], 0
                for r, t in outputs:
                    if r in recorder.derived:
                        continue   # derived: its Gram comes with its source's
                    if frames[-1] and size + t.nbytes > FRAME_TENSOR_BYTES:
                        frames.append([])
                        size = 0
                    frames[-1].append(t)
                    size += t.nbytes
                for frame in frames:
                    # Two frames in flight; each memfd is written again only after its frame's answer.
                    buffer = buffers[sent % 2] if buffers else None
                    in_flight.append(client.submit_session_batch(session, key, [(t.name, t) for t in frame],
                                                                 memfd=buffer))
                    sent += 1
                    if len(in_flight) > 1:
                        client.wait(in_flight.pop(0))
                if len(keys) == 0 and recorder.derived:
                    # An older daemon ignores channel_affine: the derived ones stay pending.
                    last = None
                    while in_flight:
                        last = client.wait(in_flight.pop(0))[0]
                    stale = sorted(set(last["pending"]) & set(recorder.derived)) if last else []
                    if stale:
                        raise RuntimeError("the daemon does not derive representations (%s stay "
                                           "pending): update blockscoped, or pass "
                                           "derive_batchnorm=False" % ", ".join(stale[:3]))
                keys.append(key)
            for rid in in_flight:
                client.wait(rid)
    finally:
        model.train(was_training)
        for b in buffers or []:
            b.close()
    if session is None:
        raise ValueError("the loader gave no batch of at least 4 examples")
    client.session_close(session)
    return {"model": name, "fingerprint": fingerprint, "batches": keys, "representations": declared,
            "derived": sorted(recorder.derived)}


def torch_heatmap(model, loader, layers="all", client=None, name=None, fingerprint=None,
                  dataset=None, other=None, other_foreign=None, estimator=None, bootstrap=None,
                  max_batches=None, device=None, block_of=residual_block_of,
                  transfer=DEFAULT_TRANSFER, derive_batchnorm=True, **heatmap_options):
    """Streams the model (stream_model) and returns the daemon's minibatch-CKA heatmap over its
    representations: within the model, or against `other` (a stored model, or a foreign one
    with other_foreign=True) on the same batches. The result is Client.heatmap's, plus
    "streamed" (stream_model's summary)."""
    own = client is None
    client = client or bc.Client()
    try:
        streamed = stream_model(client, model, loader, layers=layers, name=name,
                                fingerprint=fingerprint, dataset=dataset,
                                max_batches=max_batches, device=device, block_of=block_of,
                                transfer=transfer, derive_batchnorm=derive_batchnorm)
        result = client.heatmap(streamed["model"], other=other, batches=streamed["batches"],
                                foreign=True, other_foreign=other_foreign, estimator=estimator,
                                bootstrap=bootstrap, **heatmap_options)
        result["streamed"] = streamed
        return result
    finally:
        if own:
            client.close()
