#!/usr/bin/env bash
# Throwaway services for the test suite. Sourced by scripts/test.sh.
start_test_services() { :; }
stop_test_services() { :; }
