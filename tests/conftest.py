"Shared pytest setup: never touch W&B servers, never open windows."
import os
os.environ.setdefault('WANDB_MODE', 'offline')
os.environ.setdefault('WANDB_SILENT', 'true')
os.environ.setdefault('MPLBACKEND', 'Agg')

import pytest
from hypothesis import settings

# property tests: few examples in CI, many with HYPOTHESIS_PROFILE=slow
settings.register_profile('ci', max_examples=6, deadline=None, derandomize=True)
settings.register_profile('slow', max_examples=150, deadline=None)
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'ci'))

def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: long loops (fault injection); run with ESPER_SLOW=1')

def pytest_collection_modifyitems(config, items):
    if os.environ.get('ESPER_SLOW'): return
    skip = pytest.mark.skip(reason='slow: set ESPER_SLOW=1 to run')
    for item in items:
        if 'slow' in item.keywords: item.add_marker(skip)
