"""Tests of plot."""
