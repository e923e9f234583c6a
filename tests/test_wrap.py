"""Wrapped hosts: isolation proofs and exact function preservation (float64) on torchvision's ResNet-18 and the ViT host
for every blueprint of each layout, export → reload, resume on a wrapped host, bad `at=` names."""
import copy, json
from pathlib import Path
import pytest, torch, torchvision
import torch.nn.functional as F
from esper.contracts.stages import SeedStage as S
from esper.kasmina.blueprints import blueprints_for
from esper.kasmina.slot import GateConfig
from esper.kasmina.host import MorphogeneticModel, MorphoOptimizer, load_export, install_fossil
from esper.kasmina.hosts import resnet18, vit, build_model
from esper.kasmina.blueprints import TOKEN_BLUEPRINTS
from esper.io import save_torch
from esper.config import RunConfig
from esper.data import load_dataset
from esper.trainer import Trainer
from esper.run import run, resume
from esper.tamiyo.baselines import make_policy
from test_trainer import InterruptAfter  # the Ctrl-C stand-in the trainer tests use

OPEN = GateConfig(min_training_epochs=0, blend_epochs=2, min_shadowing_epochs=0, min_probation_epochs=0,
                  g4_max_harm=1., g5_min_contribution=-1., embargo_epochs=2)
HOSTS = {'resnet18': (lambda: resnet18(5), 'layer2', (3, 16, 16)), 'vit': (lambda: vit(5, 3, 16), 'blocks.1', (3, 16, 16))}
CASES = [(h, bp) for h, lay in (('resnet18', 'BCHW'), ('vit', 'BTD')) for bp in blueprints_for(lay)]


def wrapped(host, bp, seed=0):
    "A float64 wrapped host with a perturbed `bp` seed germinated in its one slot, and an exact bare copy of the host."
    torch.manual_seed(seed)
    make, at, shape = HOSTS[host]
    net = make().double()
    bare = copy.deepcopy(net)
    m = MorphogeneticModel.wrap(net, at=[at], example_input=torch.zeros(2, *shape, dtype=torch.float64), gate_config=OPEN)
    assert m.slots[0].germinate(bp, 0).passed
    with torch.no_grad():
        for p in m.slots[0].seed.parameters(): p.add_(0.3 * torch.randn_like(p))
    return m, bare


def batch(shape, seed=1, n=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g, dtype=torch.float64), torch.randint(0, 5, (n,), generator=g)


def to_stage(slot, stage):
    while slot.stage != stage:
        if slot.stage == S.BLENDING:
            while slot.alpha < 1: slot.step_epoch(0)
        if slot.stage in (S.SHADOWING, S.PROBATIONARY): slot.record_contribution(0.5, 0.5)
        assert slot.advance(0).passed


def grads(params, loss):
    for p in params: p.grad = None
    loss.backward()
    return [p.grad.clone() for p in params]


def reference(m, bare, x, mode):
    "`bare` (the host's exact copy) with slot 0 replaced by: 'const' = the seed's blend output as a constant, 'live' = g(h), 'leaky' = blend without detach."
    slot = m.slots[0]
    def hook(mod, args, h):
        if mode == 'const': hd = h.detach(); return h + slot.alpha * (slot.seed(hd).detach() - hd)
        if mode == 'live': return slot.seed(h)
        return h + slot.alpha * (slot.seed(h) - h)
    handle = bare.get_submodule(m.at[0]).register_forward_hook(hook)
    try: return bare(x)
    finally: handle.remove()


@pytest.mark.parametrize('host, bp', CASES)
def test_wrapped_isolation_and_function_preservation(host, bp):
    m, bare = wrapped(host, bp)
    x, y = batch(HOSTS[host][2])
    hp, bp_ = list(m.host.parameters()), list(bare.parameters())
    assert torch.equal(m(x), bare(x))                                    # germinated: exactly the host
    to_stage(m.slots[0], S.TRAINING)
    out = m(x)
    assert torch.equal(out, bare(x))                                     # incubator: exactly the host
    g_m, g_bare = grads(hp, F.cross_entropy(out, y)), grads(bp_, F.cross_entropy(bare(x), y))
    assert all(torch.equal(a, b) for a, b in zip(g_m, g_bare))           # and the host's gradients are the seedless model's
    sg = [p.grad for p in m.seed_parameters(0)]
    if bp != 'noop': assert sum(float(g.abs().sum()) for g in sg) > 0   # while the seed learns
    for stage in (S.BLENDING, S.SHADOWING):
        to_stage(m.slots[0], stage)
        g_m = grads(hp, F.cross_entropy(m(x), y))
        g_c = grads(bp_, F.cross_entropy(reference(m, bare, x, 'const'), y))
        assert all(torch.equal(a, b) for a, b in zip(g_m, g_c)), stage  # host sees the seed's output as a constant
        if bp != 'noop':
            g_l = grads(bp_, F.cross_entropy(reference(m, bare, x, 'leaky'), y))
            assert any(not torch.allclose(a, b) for a, b in zip(g_m, g_l)), "the comparison cannot detect a leak"
    to_stage(m.slots[0], S.PROBATIONARY)
    g_m = grads(hp, F.cross_entropy(m(x), y))
    g_live = grads(bp_, F.cross_entropy(reference(m, bare, x, 'live'), y))
    assert all(torch.allclose(a, b, rtol=1e-12, atol=1e-14) for a, b in zip(g_m, g_live))


@pytest.mark.parametrize('host', list(HOSTS))
def test_incubator_keeps_the_function_while_the_seed_trains(host):
    bp = 'conv_enhance' if host == 'resnet18' else 'self_attention'
    m, _ = wrapped(host, bp); to_stage(m.slots[0], S.TRAINING)
    x, y = batch(HOSTS[host][2])
    opt = MorphoOptimizer(m, lr=0.01, seed_lr=0.1)
    before = [p.detach().clone() for p in m.seed_parameters(0)]
    for _ in range(2):
        out = m(x)
        with m.slots[0].override_alpha(0.): assert torch.equal(out, m(x))  # the model equals itself without the seed
        opt.zero_grad(); F.cross_entropy(out, y).backward(); opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, m.seed_parameters(0)))


@pytest.mark.parametrize('host', list(HOSTS))
def test_export_reload_gives_the_same_outputs(host, tmp_path):
    torch.manual_seed(0)
    shape = HOSTS[host][2]
    kw = dict(blueprints=TOKEN_BLUEPRINTS) if host == 'vit' else {}
    m = build_model(host, 3, 5, shape[1:], slots_after=(0, 1), **kw)
    install_fossil(m, 1, 'mlp' if host == 'vit' else 'depthwise')
    with torch.no_grad():
        for p in m.slots[1].seed.parameters(): p.add_(0.1 * torch.randn_like(p))
    m.eval(); x = torch.randn(2, *shape)
    net, spec = m.export()
    save_torch(net.state_dict(), tmp_path / 'w.pt'); (tmp_path / 's.json').write_text(json.dumps(spec))
    back = load_export(json.loads((tmp_path / 's.json').read_text()), torch.load(tmp_path / 'w.pt', weights_only=True)).eval()
    assert torch.equal(back(x), m(x)) and torch.equal(net.eval()(x), m(x))
    assert spec['host']['factory'] == f'esper.kasmina.hosts:{host}' and [f['at'] for f in spec['fossils']] == [m.at[1]]
    assert sum(p.numel() for p in back.parameters()) == m.param_count() - sum(p.numel() for p in m.slots[0].parameters())


def test_resume_equals_uninterrupted_on_a_wrapped_host(tmp_path):
    c = RunConfig.preset('tiny', host='vit', blueprints=TOKEN_BLUEPRINTS, slots_after=(1, 3), data_limit=128, val_size=64, contribution_batch=64)
    strip = lambda h: [{k: v for k, v in e.items() if not k.startswith('time/')} for e in h]
    full = run(c, make_policy('periodic', every=1, n_slots=2), runs_root=tmp_path / 'a')
    part = run(c, InterruptAfter(make_policy('periodic', every=1, n_slots=2), 4), runs_root=tmp_path / 'b')
    assert part.interrupted
    resumed = resume(part.run_dir, make_policy('periodic', every=1, n_slots=2))
    assert json.dumps(strip(resumed.history)) == json.dumps(strip(full.history))
    assert resumed.test_acc == full.test_acc and resumed.fossils + resumed.culls >= 1
    assert [r['history'] for r in resumed.field_reports] == [r['history'] for r in full.field_reports]


def test_bad_at_names_are_one_line_listing_the_submodules():
    net = torchvision.models.resnet18(num_classes=5)
    with pytest.raises(ValueError) as e:
        MorphogeneticModel.wrap(net, at=['layer2', 'layer9'], example_input=torch.zeros(2, 3, 16, 16))
    msg = str(e.value)
    assert '\n' not in msg and msg.startswith("unknown submodule(s) 'layer9' in ResNet; it has: conv1, bn1, relu, maxpool, layer1, layer1.0")
    assert all(n in msg.split('it has: ')[1].split(', ') for n, _ in net.named_modules() if n)
    with pytest.raises(ValueError, match="submodule 'layer1.0.relu' ran 2 times in one forward"):
        MorphogeneticModel.wrap(net, at=['layer1.0.relu'], example_input=torch.zeros(2, 3, 16, 16))


@pytest.mark.parametrize('host', list(HOSTS))
def test_one_pass_counterfactuals_equal_full_passes(host):
    "The built-in hosts start at a slot (`forward_from`): the shared-prefix logits equal full passes exactly, and the FLOPs saved are the prefix's."
    torch.manual_seed(0)
    shape = HOSTS[host][2]
    m = build_model(host, 3, 5, shape[1:], slots_after=(0, 2), gate_config=OPEN, **(dict(blueprints=TOKEN_BLUEPRINTS) if host == 'vit' else {}))
    for k, bp in ((0, 'mlp' if host == 'vit' else 'norm'), (1, 'self_attention' if host == 'vit' else 'attention')):
        m.slots[k].germinate(bp, 0); to_stage(m.slots[k], S.BLENDING)
        with torch.no_grad():
            for p in m.slots[k].seed.parameters(): p.add_(0.2 * torch.randn_like(p))
    m.eval(); x = torch.randn(4, *shape)
    with torch.no_grad():
        logits, cf = m.forward_counterfactual(x)
        assert m.can_split and torch.equal(logits, m(x)) and list(cf) == [0, 1]
        for k in (0, 1):
            for a, got in zip((1., 0.), cf[k]):
                with m.slots[k].override_alpha(a): assert torch.equal(got, m(x)), (k, a)
    assert 0 < m.prefix_flops(0) < m.prefix_flops(1) < m.flops_per_sample()


def test_a_host_without_forward_from_falls_back_to_full_passes():
    torch.manual_seed(0)
    m = MorphogeneticModel.wrap(torchvision.models.resnet18(num_classes=5), at=['layer2'], example_input=torch.zeros(2, 3, 16, 16), gate_config=OPEN)
    m.slots[0].germinate('norm', 0); to_stage(m.slots[0], S.BLENDING)
    m.eval(); x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        logits, cf = m.forward_counterfactual(x)
        with m.slots[0].override_alpha(0.): bypassed = m(x)
    assert (m.can_split, m.prefix_flops(0)) == (False, 0) and torch.equal(cf[0][1], bypassed) and torch.equal(logits, m(x))


def test_optimizer_drops_a_seed_group_by_identity_when_host_and_seed_hold_as_many_tensors():
    "A small user network has 6 parameter tensors, like a conv_enhance seed: removing the seed's group must not compare tensors."
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 3))
    m = MorphogeneticModel.wrap(net, at=['2'], example_input=torch.zeros(2, 1, 8, 8))
    opt = MorphoOptimizer(m, lr=0.1, seed_lr=0.1)
    assert m.slots[0].germinate('conv_enhance', 0).passed and len(m.seed_parameters(0)) == len(list(net.parameters())) == 6
    opt.sync(); assert [g['name'] for g in opt.param_groups] == ['host', 'seed0']
    m.slots[0].cull('test', 0); opt.sync()
    assert [g['name'] for g in opt.param_groups] == ['host']


USER_NET = '''from torch import nn
def small(n_classes, in_channels):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, n_classes))
'''

def test_a_user_factory_host_runs_exports_and_reloads_from_its_spec(tmp_path, monkeypatch):
    (tmp_path / 'my_nets_t14.py').write_text(USER_NET); monkeypatch.syspath_prepend(str(tmp_path))
    c = RunConfig.preset('tiny', host='module:my_nets_t14:small', slots_after=(2,), static_seeds=('norm',), epochs=2, data_limit=128)
    res = run(c, make_policy('static'), runs_root=tmp_path / 'runs')
    d = Path(res.run_dir)
    spec = json.loads((d / 'grown_model.json').read_text())
    assert spec['host'] == {'name': 'module:my_nets_t14:small', 'factory': 'my_nets_t14:small', 'kwargs': {'n_classes': 10, 'in_channels': 1}}
    assert [(f['at'], f['blueprint']) for f in spec['fossils']] == [('2', 'norm')]
    net = load_export(spec, torch.load(d / 'grown_model.pt', weights_only=True)).eval()
    data = load_dataset(c.dataset, seed=c.seed, val_size=c.val_size, limit=c.data_limit)
    with torch.no_grad(): acc = (net(data.test_x).argmax(1) == data.test_y).float().mean().item()
    assert abs(acc - res.test_acc) < 1e-6 and res.params == sum(p.numel() for p in net.parameters())


def test_a_checkpoint_for_another_host_is_refused():
    c = RunConfig.preset('tiny', host='vit', blueprints=TOKEN_BLUEPRINTS, data_limit=64, val_size=32)
    tr = Trainer(c); tr.reset(); st = tr.state_dict()
    st['host'] = json.dumps({**json.loads(st['host']), 'at': ['blocks.3']})
    with pytest.raises(ValueError, match="checkpoint is for host .*'blocks.3'.*this config builds"): Trainer(c).load_state_dict(st)
