// Seed "Task cancellation" and the rule that goes with it: catch CancelledError only to clean
// up, then rethrow.
//   task = asyncio.create_task(long_running()); task.cancel()
//   try: await task
//   except asyncio.CancelledError: print("task was cancelled")
#include <corio/corio.hpp>

#include <iostream>

using namespace std::chrono_literals;

bool cleaned_up = false;

corio::Coro<> long_running() {
    try {
        co_await corio::sleep(1h);
    } catch (const corio::CancelledError&) {
        cleaned_up = true;  // release what must be released...
        throw;              // ...and let the cancellation go on: never swallow it
    }
}

corio::Coro<int> main_coro() {
    auto task = corio::create_task(long_running());
    co_await corio::sleep(0s);  // let it start
    task.cancel("shutting down");
    bool seen = false;
    try {
        co_await task;
    } catch (const corio::CancelledError& e) {
        std::cout << "task was cancelled: " << e.what() << "\n";
        seen = true;
    }
    // CancelledError is not a std::exception: a catch-all for errors cannot swallow it.
    static_assert(!std::is_base_of_v<std::exception, corio::CancelledError>);
    co_return (seen && cleaned_up && task.cancelled()) ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
