"""Header and label-set validation: blank column names, duplicate label names, format sniffing."""
import pytest

from dallmi_core import CorpusError, read_corpus


def test_blank_column_name_in_wide_header_is_refused():
    # before the fix: read as a label named '' -> labels ['A', '', 'B']
    with pytest.raises(CorpusError):
        read_corpus(b"id,text,A,,B\n1,a,1,0,1\n")


def test_label_set_with_duplicate_names_is_refused():
    # before the fix: labels ['A', 'A'] and Y [[0, 1]] (two columns for one name, only the last one set)
    with pytest.raises((CorpusError, ValueError)):
        read_corpus(b'{"text": "a", "labels": ["A"]}\n', label_set=["A", "A"])
