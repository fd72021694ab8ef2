"""The demos: `make demo` (simulated models, quantgate.demo.simulated) and `make demo-real` (a real
GGUF model through llama.cpp, quantgate.demo.real, with its server part in quantgate.demo.server).
They sit above everything they show (runner, decision engine, reports, simulator) and nothing
imports them; the runtime image leaves them out."""
