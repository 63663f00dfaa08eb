// Seed "Lock -- mutual exclusion".
//   async with lock: state["counter"] += 1   (only one coroutine at a time)
// A read-modify-write with an await in the middle loses updates without the lock.
#include <corio/corio.hpp>

#include <iostream>
#include <map>
#include <string>
#include <vector>

using namespace std::chrono_literals;

std::map<std::string, int> state{{"counter", 0}};

corio::Coro<> update_shared_state(corio::Lock* lock) {
    auto held = co_await lock->acquire();  // async with lock:
    int seen = state["counter"];
    co_await corio::sleep(0s);  // another task runs here; without the lock it would see `seen` too
    state["counter"] = seen + 1;
}

corio::Coro<int> main_coro() {
    corio::Lock lock;
    std::vector<corio::Coro<>> updates;
    for (int i = 0; i < 50; ++i) updates.push_back(update_shared_state(&lock));
    co_await corio::gather(std::move(updates));
    std::cout << "counter = " << state["counter"] << "\n";
    co_return state["counter"] == 50 ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
