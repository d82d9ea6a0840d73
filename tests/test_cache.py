"""The variant cache: one render per key however many threads ask, and stale modules re-rendered."""

from concurrent.futures import ThreadPoolExecutor

from lstmgen.cache import VariantCache, is_current
from lstmgen.lower.plan import VariantKey
from lstmgen.spec import LSTMSpec

KEY = VariantKey.from_spec(LSTMSpec(3, input_dim=2), "cpu")


def test_concurrent_lookups_render_once_and_share_the_module(tmp_path):
    cache = VariantCache(tmp_path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        modules = list(pool.map(lambda _: cache.get(KEY), range(16)))
    assert all(m is modules[0] for m in modules)
    assert cache.stats == {"rendered": 1, "memory": 15}
    assert [p.name for p in tmp_path.glob("*.py")] == [f"{KEY.module_name}.py"]


def test_a_module_from_another_generator_or_template_is_rendered_again(tmp_path):
    VariantCache(tmp_path).get(KEY)
    path = tmp_path / f"{KEY.module_name}.py"
    assert is_current(path)
    path.write_text(path.read_text().replace("# Generator digest: ", "# Generator digest: 0", 1))
    assert not is_current(path)
    fresh = VariantCache(tmp_path)
    fresh.get(KEY)
    assert fresh.stats == {"rendered": 1} and is_current(path)
    again = VariantCache(tmp_path)
    again.get(KEY)
    assert again.stats == {"module": 1}
