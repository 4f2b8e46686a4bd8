"""The `manual_dir` fixture's rule: missing shared data fail the tests in CI, skip them locally."""

import pytest

from tests import conftest


@pytest.mark.parametrize('ci', ['true', '1'])
def test_missing_shared_data_fail_in_ci(tmp_path, monkeypatch, ci):
  monkeypatch.setenv('CI', ci)
  with pytest.raises(pytest.fail.Exception, match='CI is set, so this fails instead of skipping'):
    conftest.require_shared_data(tmp_path / 'missing')


@pytest.mark.parametrize('ci', [None, '', 'false'])
def test_missing_shared_data_skip_locally(tmp_path, monkeypatch, ci):
  if ci is None:
    monkeypatch.delenv('CI', raising=False)
  else:
    monkeypatch.setenv('CI', ci)
  with pytest.raises(pytest.skip.Exception, match='shared real data are not at'):
    conftest.require_shared_data(tmp_path / 'missing')


def test_present_shared_data_are_returned(tmp_path):
  assert conftest.require_shared_data(tmp_path) == str(tmp_path)
