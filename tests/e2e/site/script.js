window.zfwScript = true;
