"""Tests of sample."""
