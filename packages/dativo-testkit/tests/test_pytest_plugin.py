"""The pytest plugin (pytest11 entry point) and conformance_test_class, exercised with pytester."""

from __future__ import annotations

import pytest


def test_the_factory_gives_one_passing_test_per_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mock="""
        from dativo_testkit import MockReader, conformance_test_class

        TestMockReader = conformance_test_class(
            MockReader, config={"records": 40}, bad_config={"records": -1}
        )
        TestTwoBadConfigs = conformance_test_class(
            MockReader,
            config={"records": 40},
            bad_config=[{"records": -1}, lambda: {"check_connection_error": "authentication"}],
        )
        """
    )
    result = pytester.runpytest("--strict-markers", "-v", "-m", "dativo_conformance")
    result.assert_outcomes(passed=30, skipped=16)  # 4 mock-API, 3 config-spec and the partition check each
    result.stdout.fnmatch_lines(
        [
            "*TestMockReader::test_reader_extract_streams PASSED*",
            "*TestTwoBadConfigs::test_reader_rejects_bad_config PASSED*",
        ]
    )


def test_failures_and_skips_carry_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_broken="""
        from dativo_plugin_sdk import State
        from dativo_testkit import MockReader, conformance_test_class

        class DuplicateKeys(MockReader):
            def extract(self, state=None):
                for batch in super().extract(state=state):
                    yield [{**r, "id": 1} for r in batch]

        TestDuplicateKeys = conformance_test_class(DuplicateKeys, config={"records": 30})
        """
    )
    result = pytester.runpytest("--strict-markers", "-rs")
    result.assert_outcomes(passed=12, failed=1, skipped=10)
    result.stdout.fnmatch_lines(
        [
            "*reader.primary_keys_unique: primary key {'id': 1} appears twice*",
            "*offending: {*",
            "SKIPPED*reader.rejects_bad_config: no bad config was given*",
        ]
    )


def test_a_failure_the_plugin_raised_shows_where(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_crashy="""
        from dativo_testkit import MockReader, conformance_test_class

        def pick(row):
            return row["missing"]

        class Crashy(MockReader):
            def discover(self):
                return pick({})

        TestCrashy = conformance_test_class(Crashy, config={"records": 30})
        """
    )
    result = pytester.runpytest("--strict-markers")
    result.stdout.fnmatch_lines(
        [
            "*reader.discover: discover raised KeyError: 'missing'",
            "  at test_crashy.py:4 in pick",
            '      return row["missing"]',
            "  at test_crashy.py:8 in discover",
            "      return pick({})",
        ]
    )


def test_configs_may_come_from_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_writer="""
        from dativo_testkit import MockWriter, conformance_test_class, read_output_folder

        TestWriter = conformance_test_class(
            MockWriter,
            config=lambda tmp_path: {"folder": str(tmp_path / "out")},
            bad_config={"folder": 5},
            read_back=lambda config: read_output_folder(config["folder"]),
            hypothesis_examples=5,
        )
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=11, skipped=3)


def test_check_timeout_option_and_mock_api_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_slow="""
        import pytest
        from dativo_testkit import MockReader, conformance_test_class

        TestSlow = conformance_test_class(MockReader, config={"records": 30, "slow_batch_seconds": 3.0})

        @pytest.mark.dativo_mock_api(records=3)
        def test_api(dativo_mock_api, dativo_mock_target):
            assert len(dativo_mock_api.records) == 3
            assert dativo_mock_target.records == []
        """
    )
    result = pytester.runpytest(
        "--strict-markers", "--dativo-check-timeout=1", "-k", "extract_yields or test_api"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*reader.extract_yields_batches: timed out after 1s*"])


def test_help_lists_the_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--dativo-check-timeout=SECONDS*"])
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["*dativo_conformance:*", "*dativo_mock_api(**kwargs)*"])


def test_writer_conformance_under_pytest_writes_nothing_to_the_current_folder(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_writer="""
        from dativo_testkit import MockWriter, conformance_test_class, read_output_folder

        TestWriter = conformance_test_class(
            MockWriter,
            config=lambda tmp_path: {"folder": str(tmp_path / "out")},
            read_back=lambda config: read_output_folder(config["folder"]),
            hypothesis_examples=5,
        )
        """
    )
    before = sorted(p.name for p in pytester.path.iterdir())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "hypothesis_round_trip")
    result.assert_outcomes(passed=1, deselected=13)
    # pytester's own files: the subprocess's --basetemp (runpytest-N) and its captured output,
    # and pytest-benchmark's storage when that plugin happens to be installed
    ours = ("runpytest-", "stdout", "stderr", ".benchmarks")
    after = sorted(p.name for p in pytester.path.iterdir() if not p.name.startswith(ours))
    assert after == before
