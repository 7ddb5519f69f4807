"""FTP: the sans-IO control-channel core and the policy tables of FtpProxy."""
