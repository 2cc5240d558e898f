"""ward.dataset"""
