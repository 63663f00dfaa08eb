# The test executables that exercise threads (to_thread, ThreadPool, run_coroutine_threadsafe,
# call_soon_threadsafe): under CORIO_SANITIZE=thread only these are built and registered.
set(CORIO_TSAN_TESTS test_executor test_loop)
