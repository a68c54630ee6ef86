"""Tests of lm."""
