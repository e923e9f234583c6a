"Data loading: split determinism, augmentation, the CIFAR binary reader on tiny files, missing-data errors."
import gzip, os, tarfile
from pathlib import Path
import numpy as np
import pytest
import torch
os.environ.setdefault('WANDB_MODE', 'offline')
from esper.data import (DATASETS, DataError, Data, Augment, load_dataset, batches, split_indices,
                        find_fashion_mnist, default_augment, FASHION_CLASSES, CIFAR10_CLASSES)

DEBIAN_FASHION = Path('/usr/share/datasets/fashion-mnist')

@pytest.fixture
def empty_env(tmp_path, monkeypatch):
    "Point every search location (root, $ESPER_DATA, Debian, cache) at empty temporary directories."
    for k in ('ESPER_DATA', 'ESPER_CACHE', 'ESPER_DEBIAN_DATA'):
        (tmp_path/k).mkdir(); monkeypatch.setenv(k, str(tmp_path/k))
    (tmp_path/'root').mkdir()
    return tmp_path

def _rows(x): return {bytes(r.cpu().numpy().tobytes()) for r in x}

# --- splits -----------------------------------------------------------------------------------

def test_split_is_deterministic_by_seed():
    a, b, c = (load_dataset('synthetic', seed=s, val_size=0.2) for s in (3, 3, 4))
    for k in ('train_x', 'train_y', 'val_x', 'val_y', 'test_x', 'test_y'): assert torch.equal(getattr(a, k), getattr(b, k))
    assert not torch.equal(a.val_x, c.val_x)
    raw = lambda d: d.test_x * torch.tensor(d.std).view(1, -1, 1, 1) + torch.tensor(d.mean).view(1, -1, 1, 1)
    assert torch.equal(a.test_y, c.test_y)  # the test set never depends on the run seed (only its normalisation does)
    torch.testing.assert_close(raw(a), raw(c))

def test_train_and_val_do_not_overlap_and_cover_the_train_set():
    d = load_dataset('synthetic', seed=1, val_size=250)
    tr, va = _rows(d.train_x), _rows(d.val_x)
    assert len(tr) == 750 and len(va) == 250 and not tr & va
    tr_i, va_i = split_indices(1000, 250, seed=1)
    assert not set(tr_i) & set(va_i) and len(set(tr_i) | set(va_i)) == 1000

def test_limit_caps_only_the_training_split():
    d = load_dataset('digits', seed=0, limit=50)
    assert (len(d.train_y), len(d.val_y), len(d.test_y)) == (50, 144, 360)
    with pytest.raises(DataError, match='limit must be'): load_dataset('digits', limit=0)

@pytest.mark.parametrize('bad', [1.0, -1, 1000, '0.1'])
def test_bad_val_size_is_one_clear_line(bad):
    with pytest.raises(DataError, match='val_size must be') as e: load_dataset('synthetic', val_size=bad)
    assert '\n' not in str(e.value)

# --- shapes -----------------------------------------------------------------------------------

def test_digits_shapes_and_no_flip():
    d = load_dataset('digits')
    assert isinstance(d, Data) and d.train_x.shape[1:] == (1, 8, 8) and d.image_size == (8, 8)
    assert (d.n_classes, d.in_channels, len(d.class_names)) == (10, 1, 10)
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    assert default_augment('digits').flip is False

@pytest.mark.parametrize('shape,k', [((3, 5, 7), 2), ((1, 28, 28), 10), ((2, 1, 1), 3)])
def test_synthetic_any_shape_and_classes(shape, k):
    d = load_dataset('synthetic', shape=shape, n_classes=k, n_train=60, n_test=30, val_size=6)
    assert d.train_x.shape == (54, *shape) and d.test_x.shape == (30, *shape)
    assert d.n_classes == k and d.image_size == shape[1:] and int(d.train_y.max()) < k

def test_normalised_with_train_statistics():
    d = load_dataset('synthetic', shape=(3, 6, 6))
    torch.testing.assert_close(d.train_x.mean((0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(d.train_x.std((0, 2, 3)), torch.ones(3), atol=1e-4, rtol=0)
    assert len(d.mean) == 3 and all(0 < m < 1 for m in d.mean)

def test_unknown_dataset_lists_names():
    with pytest.raises(DataError) as e: load_dataset('imagenet')
    assert all(n in str(e.value) for n in DATASETS)

# --- augmentation and batches -------------------------------------------------------------------

def test_augment_is_deterministic_given_the_generator():
    x = torch.randn(32, 3, 8, 8)
    a = Augment(crop_pad=2, flip=True)
    y1, y2 = a(x, torch.Generator().manual_seed(5)), a(x, torch.Generator().manual_seed(5))
    y3 = a(x, torch.Generator().manual_seed(6))
    assert torch.equal(y1, y2) and not torch.equal(y1, y3) and y1.shape == x.shape

def test_augment_crop_is_a_shift_of_the_padded_image():
    x = torch.arange(1, 1 + 2*25, dtype=torch.float32).view(2, 1, 5, 5)
    y = Augment(crop_pad=2, flip=False)(x, torch.Generator().manual_seed(0))
    for xi, yi in zip(x, y):
        padded = torch.nn.functional.pad(xi, (2, 2, 2, 2))
        assert any(torch.equal(padded[:, r:r+5, c:c+5], yi) for r in range(5) for c in range(5))

def test_batches_are_deterministic_and_cover_the_data():
    x, y = torch.randn(23, 1, 4, 4), torch.arange(23)
    run = lambda s: list(batches(x, y, 5, generator=torch.Generator().manual_seed(s), augment=Augment(1, True)))
    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert sorted(torch.cat([t[1] for t in a]).tolist()) == list(range(23))
    assert not torch.equal(torch.cat([t[1] for t in a]), torch.cat([t[1] for t in c]))
    assert [len(t[1]) for t in batches(x, y, 5, drop_last=True)] == [5, 5, 5, 5]

# --- CIFAR binary reader on tiny generated files ------------------------------------------------------

def _records(n, label_bytes, rng):
    labels = rng.integers(0, 10 if label_bytes == 1 else 100, (n, label_bytes), dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return np.concatenate([labels, pixels], 1), labels[:, -1].astype(np.int64), pixels.reshape(n, 3, 32, 32)

def _write_cifar10(folder: Path, rng, n=4):
    folder.mkdir(parents=True)
    truth = {}
    for name in [f'data_batch_{i}.bin' for i in range(1, 6)] + ['test_batch.bin']:
        rec, y, x = _records(n, 1, rng); rec.tofile(folder/name); truth[name] = (x, y)
    return truth

def test_cifar10_binary_reader_on_tiny_files(empty_env):
    truth = _write_cifar10(empty_env/'root'/'cifar-10-batches-bin', np.random.default_rng(0))
    d = load_dataset('cifar10', root=empty_env/'root', val_size=0)
    ty = np.concatenate([truth[f'data_batch_{i}.bin'][1] for i in range(1, 6)])
    assert d.train_x.shape == (20, 3, 32, 32) and d.test_x.shape == (4, 3, 32, 32)
    assert d.train_y.tolist() == ty.tolist() and d.test_y.tolist() == truth['test_batch.bin'][1].tolist()
    assert (d.n_classes, d.class_names) == (10, CIFAR10_CLASSES)
    # undo the normalisation: the pixels are the bytes written, in channel-first order
    mean, std = torch.tensor(d.mean).view(1, 3, 1, 1), torch.tensor(d.std).view(1, 3, 1, 1)
    px = ((d.test_x * std + mean) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(px, truth['test_batch.bin'][0])

def test_cifar100_from_tar_gz_uses_fine_labels(empty_env):
    rng, src = np.random.default_rng(1), empty_env/'build'/'cifar-100-binary'
    src.mkdir(parents=True)
    (tr, try_, _), (te, tey, _) = _records(6, 2, rng), _records(3, 2, rng)
    tr.tofile(src/'train.bin'); te.tofile(src/'test.bin')
    (src/'fine_label_names.txt').write_text('\n'.join(f'fine{i}' for i in range(100)))
    with tarfile.open(Path(os.environ['ESPER_DATA'])/'cifar-100-binary.tar.gz', 'w:gz') as tf:
        tf.add(src, arcname='cifar-100-binary')
    d = load_dataset('cifar100', val_size=2)  # found via $ESPER_DATA, extracted there
    assert (Path(os.environ['ESPER_DATA'])/'cifar-100-binary'/'train.bin').is_file()
    assert sorted(d.train_y.tolist() + d.val_y.tolist()) == sorted(try_.tolist())
    assert d.test_y.tolist() == tey.tolist() and d.n_classes == 100 and d.class_names[7] == 'fine7'

@pytest.mark.parametrize('name,file', [('cifar10', 'cifar-10-binary.tar.gz'), ('cifar100', 'cifar-100-binary.tar.gz')])
def test_missing_cifar_names_the_file_and_where_to_put_it(empty_env, name, file):
    with pytest.raises(DataError) as e: load_dataset(name, root=empty_env/'root')
    msg = str(e.value)
    assert '\n' not in msg and file in msg and '$ESPER_DATA' in msg

def test_cifar_folder_missing_a_file_is_an_error(empty_env):
    folder = empty_env/'root'/'cifar-10-batches-bin'
    _write_cifar10(folder, np.random.default_rng(0))
    (folder/'data_batch_3.bin').unlink()
    with pytest.raises(DataError, match='data_batch_3.bin is missing'): load_dataset('cifar10', root=empty_env/'root')

# --- Fashion-MNIST search order -----------------------------------------------------------------

def _write_fashion(d: Path, n_train=7, n_test=3):
    d.mkdir(parents=True, exist_ok=True)
    for stem, a in [('train-images-idx3-ubyte', np.full((n_train, 28, 28), 9)), ('train-labels-idx1-ubyte', np.arange(n_train) % 10),
                    ('t10k-images-idx3-ubyte', np.full((n_test, 28, 28), 3)), ('t10k-labels-idx1-ubyte', np.arange(n_test) % 10)]:
        with gzip.open(d/f'{stem}.gz', 'wb') as f:
            f.write(bytes([0, 0, 8, a.ndim]) + np.array(a.shape, '>i4').tobytes() + a.astype(np.uint8).tobytes())

def test_missing_fashion_mnist_is_one_clear_line(empty_env):
    assert find_fashion_mnist(empty_env/'root') is None
    with pytest.raises(DataError) as e: load_dataset('fashion_mnist', root=empty_env/'root', download=False)
    msg = str(e.value)
    assert '\n' not in msg and 'dataset-fashion-mnist' in msg and '$ESPER_DATA' in msg

def test_fashion_mnist_search_order(empty_env):
    _write_fashion(Path(os.environ['ESPER_DEBIAN_DATA'])/'fashion-mnist', n_train=11)
    d = load_dataset('fashion_mnist', root=empty_env/'root', val_size=1, download=False)
    assert len(d.train_y) == 10 and d.source.startswith(os.environ['ESPER_DEBIAN_DATA'])
    _write_fashion(Path(os.environ['ESPER_DATA']), n_train=9)           # $ESPER_DATA beats Debian
    assert len(load_dataset('fashion_mnist', val_size=1, download=False).train_y) == 8
    _write_fashion(empty_env/'root'/'FashionMNIST'/'raw', n_train=5)    # root beats both
    d = load_dataset('fashion_mnist', root=empty_env/'root', val_size=1, download=False)
    assert len(d.train_y) == 4 and d.class_names == FASHION_CLASSES and d.image_size == (28, 28)

@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason='Debian package dataset-fashion-mnist not installed')
def test_real_fashion_mnist_falls_through_to_debian(empty_env, monkeypatch):
    monkeypatch.delenv('ESPER_DEBIAN_DATA')  # the real system directory; root and $ESPER_DATA stay empty
    d = load_dataset('fashion_mnist', root=empty_env/'root', val_size=5000, limit=1000, download=False)
    assert d.source == str(DEBIAN_FASHION)
    assert (len(d.train_y), len(d.val_y), len(d.test_y), d.n_classes) == (1000, 5000, 10000, 10)
    assert torch.bincount(d.test_y).tolist() == [1000] * 10
