"""Tests of the nlu package (mirrors nlu/)."""
