// Seed "Quick Start": print, sleep, print.
//   async def main(): print("Hello"); await asyncio.sleep(1); print("World")
//   asyncio.run(main())
#include <corio/corio.hpp>

#include <iostream>

using namespace std::chrono_literals;

corio::Coro<> main_coro() {
    std::cout << "Hello" << std::endl;
    co_await corio::sleep(100ms);  // the seed sleeps 1 s; shortened so the test suite stays quick
    std::cout << "World" << std::endl;
}

int main() { corio::run(main_coro()); }
