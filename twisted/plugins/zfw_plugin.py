"""Makes ``twistd zfw`` known to twistd."""

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IServiceMaker, IPlugin)
class _ZfwServiceMaker:
    tapname = "zfw"
    description = "zfw application-level proxy firewall: run one instance of a policy"

    @property
    def options(self):
        from zfw.twistd import Options

        return Options

    def makeService(self, options):
        from zfw.twistd import make_service

        return make_service(options)


serviceMaker = _ZfwServiceMaker()
