// See package.json: the real build is present only when its GPU backend workspace was installed.
export * from "auxot-llama-linux-x64-cuda";
